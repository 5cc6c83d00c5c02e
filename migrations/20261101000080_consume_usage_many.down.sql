DROP FUNCTION IF EXISTS mingus_consume_usage_many(uuid[], text[], text[], bigint[], bigint[],
                                                  timestamptz[], timestamptz[], uuid[]);
