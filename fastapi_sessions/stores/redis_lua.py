"""The Lua scripts of the Redis store: each store operation is one of them, run by SHA.

The session hash holds ``=name`` fields (session data, JSON) and ``c``/``e``/``p``/``v``/``w``
(created, expires, persistent, version, token of the last version-checked write).
"""

# ARGV: touch_ms. Returns the hash as a flat list; refreshes the TTL, never past field 'e'.
LOAD_TOUCH = """
local data = redis.call('HGETALL', KEYS[1])
if #data == 0 then return data end
local ttl = tonumber(ARGV[1])
local e = tonumber(redis.call('HGET', KEYS[1], 'e'))
if e then
  local t = redis.call('TIME')
  local left = math.floor((e - (tonumber(t[1]) + tonumber(t[2]) / 1000000)) * 1000)
  if left < ttl then ttl = left end
end
if ttl < 1 then ttl = 1 end
redis.call('PEXPIRE', KEYS[1], ttl)
return data
"""

# ARGV: ttl_ms, field, value, ... Returns 1 if created, 0 if the key exists.
CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

# The shared part of update and rename. ARGV: ttl_ms, expected_version ('' for none), write token
# ('' for none), n (number of set arguments), n set arguments (field, value, ...), fields to delete.
# The token makes a write that redis-py retried after a lost reply answer 'ok' instead of a false
# 'conflict' (its first run already applied it).
APPLY = """
local n = tonumber(ARGV[4])
if n > 0 then redis.call('HSET', KEYS[1], unpack(ARGV, 5, 4 + n)) end
if #ARGV > 4 + n then redis.call('HDEL', KEYS[1], unpack(ARGV, 5 + n)) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'w', ARGV[3]) end
redis.call('HINCRBY', KEYS[1], 'v', 1)
"""
CHECK_VERSION = """
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'w') == ARGV[3] then return 'ok' end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'v') ~= ARGV[2] then return 'conflict' end
"""
UPDATE = (
    """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
"""
    + CHECK_VERSION
    + APPLY
    + """
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 'ok'
"""
)
# KEYS: old, new (one hash slot).
RENAME = (
    """
if redis.call('EXISTS', KEYS[1]) == 0 then
  if ARGV[3] ~= '' and redis.call('HGET', KEYS[2], 'w') == ARGV[3] then return 'ok' end
  return 'missing'
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 'exists' end
"""
    + CHECK_VERSION
    + APPLY
    + """
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 'ok'
"""
)
# ARGV: version. Deletes the key only if its version is still ARGV[1] (cluster rename, step 3).
DELETE_IF_VERSION = """
if redis.call('HGET', KEYS[1], 'v') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
