"""The SQL that fills serving tables with synthetic rows inside PostgreSQL, for benchmarks.

``wikipulse bench query`` fills a week at live rate and ``wikipulse bench dashboard`` a few
hours at ten times that; both use these statements, so the two benchmarks measure data of the
same shape. A statement is formatted with ``t`` (the table) and, as it needs them, ``time``
(:data:`MINUTES_SQL` or :data:`HOURS_SQL`, themselves formatted with ``n``), ``scale``,
``rows`` and ``top``; it is then bound with ``rate``, ``first`` or ``first_hour``, and
``rc_first`` and ``rc_rows`` for ``recent_changes``.
"""

from __future__ import annotations

__all__ = ["HOURS_SQL", "MINUTES_SQL", "TABLE_SQL", "WIKIS_SQL"]

WIKIS_SQL = """
CREATE TEMP TABLE bench_wikis AS
SELECT id,
       CASE id WHEN 1 THEN 'commonswiki' WHEN 2 THEN 'wikidatawiki' ELSE 'w' || id END AS wiki,
       CASE id WHEN 1 THEN 'commons.wikimedia.org' WHEN 2 THEN 'www.wikidata.org'
            ELSE 'l' || (id % 300) || '.' || fam || '.org' END AS server_name,
       CASE id WHEN 1 THEN 'commons' WHEN 2 THEN 'wikidata' ELSE fam END AS project,
       CASE WHEN id <= 2 THEN NULL ELSE 'l' || (id % 300) END AS language
FROM generate_series(1, 900) AS id,
     LATERAL (SELECT (ARRAY['wikipedia', 'wikipedia', 'wikipedia', 'wiktionary', 'wikisource',
                            'wikibooks', 'wikiquote', 'wikivoyage'])[1 + id % 8] AS fam) AS f
"""

# The windows a table is filled for: window start ``ws`` and its index ``m``.
MINUTES_SQL = (
    "(SELECT %(first)s + m * interval '1 minute' AS ws, m FROM generate_series(0, {n}) AS m)"
)
HOURS_SQL = (
    "(SELECT %(first_hour)s + h * interval '1 hour' AS ws, h AS m "
    "FROM generate_series(0, {n}) AS h)"
)

TABLE_SQL: dict[str, str] = {
    "traffic_minute": """
INSERT INTO {t} SELECT ws, e, e * 45 / 100, e * 2 / 100, e * 5 / 100, e * 35 / 100,
    e - e * 87 / 100, e * 30 / 100, e - e * 30 / 100, e * 14 / 100, e * 31 / 100,
    e * 210, e * 90, e * 120
FROM (SELECT ws, (%(rate)s * {scale} * (0.85 + 0.3 * random()))::bigint AS e FROM {time} AS t) AS s
""",
    "wiki_minute": """
INSERT INTO {t} SELECT ws, w.wiki, w.server_name, w.project, w.language, ev, ev / 2, ev / 40,
    ev * 3 / 10, ev * 150, ev * 60
FROM {time} AS t CROSS JOIN LATERAL (
    SELECT CASE WHEN k <= 20 THEN k ELSE 21 + (k * 7919 + t.m * 31) %% 880 END AS wid,
           greatest(1, ({top} / power(k, 1.1) * (0.8 + 0.4 * random())))::bigint AS ev
    FROM generate_series(1, {rows}) AS k) AS r
JOIN bench_wikis AS w ON w.id = r.wid
""",
    "namespace_minute": """
INSERT INTO {t} SELECT ws, (ARRAY[0, 14, 6, 2, 4, 1, 3, 10, 118, 12, 5, 7, 8, 9, 11, 13, 15,
    100, 828, 2600])[k], greatest(1, ({top} / power(k, 1.3) * (0.8 + 0.4 * random())))::bigint
FROM {time} AS t, generate_series(1, {rows}) AS k
""",
    "activity_minute": """
INSERT INTO {t} (window_start, wiki, namespace, type, is_bot, is_minor, server_name, project,
    language, events, bytes_added, bytes_removed, net_bytes)
SELECT ws, w.wiki, c.ns, c.kind, c.bot, c.minor, w.server_name, w.project, w.language, ev,
    ev * 150, ev * 60, ev * 90
FROM {time} AS t CROSS JOIN LATERAL (
    SELECT k %% ({rows} / 3) + 1 AS rank, (k / ({rows} / 3) + k %% ({rows} / 3)) %% 6 + 1 AS combo,
           greatest(1, ({top} / power(k %% ({rows} / 3) + 1, 1.1) * (0.5 + random())))::bigint AS ev
    FROM generate_series(0, {rows} - 1) AS k) AS r
JOIN bench_wikis AS w ON w.id = CASE WHEN r.rank <= 20 THEN r.rank
                                     ELSE 21 + (r.rank * 7919 + t.m * 31) %% 880 END
JOIN (VALUES (1, 0, 'edit', false, false), (2, 0, 'edit', true, false),
             (3, 14, 'categorize', false, false), (4, 0, 'edit', false, true),
             (5, 6, 'new', false, false), (6, 2, 'log', true, false))
     AS c(id, ns, kind, bot, minor) ON c.id = r.combo
""",
    "page_minute": """
INSERT INTO {t} SELECT ws,
    CASE WHEN k <= 30 THEN 'w' || (k %% 5 + 1) ELSE 'w' || (k * 13 %% 300 + 1) END,
    CASE WHEN k <= 30 THEN 'Hot page ' || k
         ELSE 'Page ' || ((t.m::bigint * {rows} + k) * 40503 %% 20000000) END,
    ev, ev * 300, ev * 100
FROM {time} AS t CROSS JOIN LATERAL (
    SELECT k, CASE WHEN k <= 30 THEN {top} + (random() * 4)::int ELSE 1 END AS ev
    FROM generate_series(1, {rows}) AS k) AS r
""",
    "user_minute": """
INSERT INTO {t} SELECT ws, CASE WHEN k <= 50 THEN 'Bot ' || k
    ELSE 'User ' || ((t.m::bigint * {rows} + k) * 7919 %% 60000) END,
    ev, ev * 8 / 10, CASE WHEN k <= 50 THEN ev ELSE 0 END, ev * 200, ev * 70
FROM {time} AS t CROSS JOIN LATERAL (
    SELECT k, CASE WHEN k <= 50 THEN {top} + (random() * 30)::int ELSE 1 + (random() * 2)::int END
        AS ev FROM generate_series(1, {rows}) AS k) AS r
""",
    "recent_changes": """
INSERT INTO {t} SELECT md5(i::text), %(rc_first)s + i * interval '20 milliseconds', w.wiki,
    w.server_name,
    (ARRAY['edit', 'edit', 'edit', 'categorize', 'categorize', 'log', 'new'])[1 + i %% 7],
    (ARRAY[0, 0, 0, 14, 6, 2, 4, 1, 3, 10])[1 + (i / 7) %% 10],
    CASE WHEN i %% 97 < 3 THEN 'Hot page ' || i %% 30 ELSE 'Page ' || (i * 40503 %% 2000000) END,
    CASE WHEN i %% 3 = 0 THEN 'Bot ' || i %% 50 ELSE 'User ' || (i * 7919 %% 60000) END,
    i %% 3 = 0, i %% 5 = 0, (i * 2654435761) %% 2001 - 800,
    (ARRAY['copy-edit', 'fixed a typo', 'Added a reference to the 2024 report',
           'Reverted edits by a vandal', '/* Early life */ expanded',
           'Bot: updating population statistics', 'Removed unsourced claims about Paris'])
        [1 + i %% 7] || ' #' || i %% 1000
FROM generate_series(0::bigint, %(rc_rows)s - 1) AS i
JOIN bench_wikis AS w ON w.id = CASE WHEN i %% 10 < 4 THEN i %% 3 + 1 ELSE i * 7919 %% 300 + 1 END
""",
}
