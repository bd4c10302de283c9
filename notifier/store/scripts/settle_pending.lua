-- Count one final delivery off each topic message; a message with none left
-- is deleted, its bytes taken back.
-- KEYS per message, in fours: pending:ID, msg:ID, quota:bytes:P, quota:expiry:P
-- ARGV per message, in twos: id, its bytes' bucket
-- Returns the ids deleted.
local deleted = {}
for i = 1, #ARGV / 2 do
  local key, message = KEYS[4 * i - 3], KEYS[4 * i - 2]
  if redis.call('EXISTS', key) == 1 and redis.call('DECR', key) <= 0 then
    usage_refund(KEYS[4 * i - 1], KEYS[4 * i], redis.call('STRLEN', message), ARGV[2 * i])
    redis.call('DEL', key, message)
    table.insert(deleted, ARGV[2 * i - 1])
  end
end
return deleted
