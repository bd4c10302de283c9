-- Release a claim: the messages it still holds are free again.
-- KEYS[1..7] the queue's consumer-side keys, KEYS[8] claim:CID
-- ARGV[1] claim id, then the claim's message ids
-- Returns 0 if the claim did not exist (expired or released), else 1.
local q, cid = qindex_keys(1), ARGV[1]
local existed = redis.call('DEL', KEYS[8])
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', q[4], id) == cid then
    redis.call('HDEL', q[4], id)
    redis.call('ZREM', q[3], id)
    local rank = redis.call('ZSCORE', q[1], id)
    if rank then redis.call('ZADD', q[2], rank, id) end
  end
end
return existed
