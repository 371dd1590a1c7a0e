-- The edits histogram of each kept lookback, so a live "edits per user" answer reads a few
-- dozen bins instead of every user of the window (24 hours: about 60,000 at live rate).
--
-- user_edits_bins holds, per lookback of user_running (V009) and power-of-two bin, how many
-- users have that many edits there and their edits. A statement trigger on user_running keeps
-- it for every change the running totals see; the query API corrects it for the users of the
-- gap before the window, as it does the totals.

-- The bin of a positive count: its bit length (1: 1, 2-3: 2, 4-7: 3, ...), found among the
-- powers of two, so it is exact for every bigint (a floating-point logarithm is not); NULL for
-- 0 and below (no bin). Not STRICT and a single expression, so the planner inlines it: a
-- call per row costs about 0.15 us instead of 2.6 us.
CREATE FUNCTION edits_bin(edits bigint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN edits > 0 THEN width_bucket(edits, '{
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072,
    262144, 524288, 1048576, 2097152, 4194304, 8388608, 16777216, 33554432, 67108864, 134217728,
    268435456, 536870912, 1073741824, 2147483648, 4294967296, 8589934592, 17179869184,
    34359738368, 68719476736, 137438953472, 274877906944, 549755813888, 1099511627776,
    2199023255552, 4398046511104, 8796093022208, 17592186044416, 35184372088832, 70368744177664,
    140737488355328, 281474976710656, 562949953421312, 1125899906842624, 2251799813685248,
    4503599627370496, 9007199254740992, 18014398509481984, 36028797018963968, 72057594037927936,
    144115188075855872, 288230376151711744, 576460752303423488, 1152921504606846976,
    2305843009213693952, 4611686018427387904
}'::bigint[]) END;

CREATE TABLE user_edits_bins (
    lookback interval NOT NULL,
    bin      integer NOT NULL,
    users    bigint NOT NULL,
    edits    bigint NOT NULL,
    PRIMARY KEY (lookback, bin)
);

-- Transition tables: `added` (inserts, updates' new rows) count in, `removed` (deletes,
-- updates' old rows) count out. Each event has only its own, hence the statement is built.
CREATE FUNCTION keep_edits_bins() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    gained constant text := 'SELECT lookback, edits, 1::bigint AS sign FROM added';
    lost   constant text := 'SELECT lookback, edits, -1::bigint AS sign FROM removed';
BEGIN
    EXECUTE format(
        'INSERT INTO user_edits_bins AS b (lookback, bin, users, edits) '
        'SELECT lookback, edits_bin(edits), bigsum(sign), bigsum(sign * edits) FROM (%s) AS d '
        'WHERE edits > 0 GROUP BY 1, 2 ON CONFLICT (lookback, bin) '
        'DO UPDATE SET users = b.users + EXCLUDED.users, edits = b.edits + EXCLUDED.edits',
        CASE TG_OP WHEN 'INSERT' THEN gained WHEN 'DELETE' THEN lost
                   ELSE gained || ' UNION ALL ' || lost END);
    RETURN NULL;
END
$$;

CREATE TRIGGER user_running_bins_inserted AFTER INSERT ON user_running
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION keep_edits_bins();
CREATE TRIGGER user_running_bins_updated AFTER UPDATE ON user_running
    REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION keep_edits_bins();
CREATE TRIGGER user_running_bins_deleted AFTER DELETE ON user_running
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION keep_edits_bins();

INSERT INTO user_edits_bins (lookback, bin, users, edits)
SELECT lookback, edits_bin(edits), count(*), bigsum(edits)
FROM user_running WHERE edits > 0 GROUP BY 1, 2;
