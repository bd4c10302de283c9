-- Collect a queue's expired messages and free those whose claim expired.
-- KEYS[1] msgs:P:queues:S (the expiry index), KEYS[2..8] the queue's
--   consumer-side keys (ranks, free, claimed, claimer, msgseq, delayed,
--   claimcount)
-- ARGV[1] now
local q, now = qindex_keys(2), tonumber(ARGV[1])
qindex_collect(q, KEYS[1], now)
qindex_release_expired(q, now)
