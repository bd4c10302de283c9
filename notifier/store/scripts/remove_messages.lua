-- Delete messages of a queue before their TTL, taking their bytes back.
-- KEYS[1] msgs:P:queues:S, KEYS[2..8] the queue's consumer-side keys,
--   KEYS[9] quota:bytes:P, KEYS[10] quota:expiry:P, then msg:ID of each message
-- ARGV[1] now, ARGV[2] mode, ARGV[3] claim id ('' for none), then the ids
--   (as KEYS from 11). Modes:
--   any    delete them, claimed or not (DELETE ?ids=)
--   claim  delete the one message by Zaqar's claim rules; nothing is deleted
--          and the reason returned when it is claimed and no or another
--          claim id is given, or a claim id is given and it is not claimed
--   pop    delete those still free (not claimed), as a claim would take them
-- Ids not ranked in this queue are left alone (another queue's messages).
-- Returns {id, message JSON} pairs of the messages deleted; in mode claim a
-- refusal is {'refused', reason}.
local q, now = qindex_keys(2), tonumber(ARGV[1])
local index, bytes, buckets = KEYS[1], KEYS[9], KEYS[10]
local mode, cid = ARGV[2], ARGV[3]
qindex_collect(q, index, now)
qindex_release_expired(q, now)
local result, gone = {}, {}
for i = 4, #ARGV do
  local id, key = ARGV[i], KEYS[i + 7]
  -- Only this queue's messages: ids are global, and another queue's (or
  -- another project's) must stay untouched, as if unknown.
  local take = redis.call('ZSCORE', q[1], id) ~= false
  if not take then
  elseif mode == 'pop' then
    take = redis.call('ZSCORE', q[2], id) ~= false
  elseif mode == 'claim' then
    local holder = redis.call('HGET', q[4], id)
    if cid == '' and holder then return {'refused', 'claimed'} end
    if cid ~= '' and not holder then return {'refused', 'not_claimed'} end
    if cid ~= '' and holder ~= cid then return {'refused', 'other_claim'} end
  end
  if take then
    local record = redis.call('GET', key)
    if record then
      local message = cjson.decode(record)
      local expires = tonumber(message['expires']) or (message['created'] + message['ttl'])
      usage_refund(bytes, buckets, #record, usage_bucket(expires))
      redis.call('DEL', key)
      result[#result + 1] = {id, record}
    end
    gone[#gone + 1] = id
  end
end
qindex_forget(q, gone)
if #gone > 0 then redis.call('ZREM', index, unpack(gone)) end
return result
