-- The edits histogram of each kept lookback, so a live "edits per user" answer reads a few
-- dozen bins instead of every user of the window (24 hours: about 60,000 at live rate).
--
-- user_edits_bins holds, per lookback of user_running (V009) and power-of-two bin, how many
-- users have that many edits there and their edits. A statement trigger on user_running keeps
-- it for every change the running totals see; the query API corrects it for the users of the
-- gap before the window, as it does the totals.

-- The bin of a positive count: its bit length (1: 1, 2-3: 2, 4-7: 3, ...). Exact for every
-- bigint, unlike a floating-point logarithm; NULL for 0 and below (no bin).
CREATE FUNCTION edits_bin(edits bigint) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN CASE WHEN edits > 0 THEN length(ltrim(edits::bit(64)::text, '0')) END;

CREATE TABLE user_edits_bins (
    lookback interval NOT NULL,
    bin      integer NOT NULL,
    users    bigint NOT NULL,
    edits    bigint NOT NULL,
    PRIMARY KEY (lookback, bin)
);

-- Transition tables: `added` (inserts, updates' new rows), `removed` (deletes, updates' old
-- rows). A branch is planned only when it runs, so each names only the tables its event has.
CREATE FUNCTION keep_edits_bins() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO user_edits_bins AS b (lookback, bin, users, edits)
        SELECT lookback, edits_bin(edits), count(*), bigsum(edits)
          FROM added WHERE edits > 0 GROUP BY 1, 2
        ON CONFLICT (lookback, bin)
        DO UPDATE SET users = b.users + EXCLUDED.users, edits = b.edits + EXCLUDED.edits;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO user_edits_bins AS b (lookback, bin, users, edits)
        SELECT lookback, edits_bin(edits), -count(*), -bigsum(edits)
          FROM removed WHERE edits > 0 GROUP BY 1, 2
        ON CONFLICT (lookback, bin)
        DO UPDATE SET users = b.users + EXCLUDED.users, edits = b.edits + EXCLUDED.edits;
    ELSE
        INSERT INTO user_edits_bins AS b (lookback, bin, users, edits)
        SELECT lookback, bin, bigsum(users), bigsum(edits)
          FROM (SELECT lookback, edits_bin(edits) AS bin, 1::bigint AS users, edits
                  FROM added WHERE edits > 0
                UNION ALL
                SELECT lookback, edits_bin(edits), -1::bigint, -edits
                  FROM removed WHERE edits > 0) AS d
         GROUP BY 1, 2
        ON CONFLICT (lookback, bin)
        DO UPDATE SET users = b.users + EXCLUDED.users, edits = b.edits + EXCLUDED.edits;
    END IF;
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
