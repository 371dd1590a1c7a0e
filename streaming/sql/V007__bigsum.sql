-- bigsum(bigint): the sum of bigints as a bigint, for the query API's aggregates.
-- The built-in sum(bigint) accumulates and returns numeric; over the tens of thousands of
-- groups of a top-pages query that conversion is about 40 % of the run time. int8pl raises on
-- overflow, so a total can never wrap. initcond 0: no rows sum to 0, as coalesce(sum(x), 0).
CREATE AGGREGATE bigsum(bigint) (
    sfunc = int8pl,
    stype = bigint,
    combinefunc = int8pl,
    initcond = '0',
    parallel = safe
);
