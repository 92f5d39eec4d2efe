public import GatehouseRedis

/// The code check: one atomic Lua script per attempt — the heart of the product.
///
/// In one round trip it (1) refuses a locked user, (2) refuses an IP prefix over its failure
/// budget, (3) refuses while the user's back-off wait runs, (4) refuses if the credential the node
/// checked against is stale, (5) refuses a challenge that already completed, then either
/// (6a) accepts a match whose step is *greater* than the last accepted step (forward-only, so an
/// older step after a newer one is a replay too), records it, clears the throttle and consumes the
/// challenge, or (6b) counts a failure: per-user consecutive failures with a doubling wait after
/// the free ones and a lock at the limit, and the per-IP counter with its window.
///
/// Time inside the script is Redis's own `TIME`, so every node throttles on one clock.
///
/// Each hash is read once: the throttle's three fields (the only ones anything writes there; a
/// success deletes the hash only when one of them is set) and the user record's credential
/// version, epoch and last accepted authenticator step.
///
/// One script serves every kind of code (one way of doing each thing); only
/// step 6 differs by `mode`:
/// - `totp`: ARGV[2] is the matched step (`-1` = no match); success needs it above the last
///   accepted step, the user record's field `totp_last`, which it then records (forward-only
///   replay protection). The step lives in the record, not in a key of its own, so a sign-in
///   creates one key fewer in Redis. A record without the field (a user who has not signed in
///   with a code since Gatehouse kept the step in its own key) takes the last step from KEYS[3],
///   that key (`…:totp:last`), which is only read, never written, and expires within a day.
/// - `set`: ARGV[2] is the keyed hash of the code; success removes it from the set KEYS[3]
///   (backup codes: single use).
/// - `email`: ARGV[2] is the keyed hash; KEYS[3] is the pending email code (hash: `h`, `cid`,
///   `tries`); success needs the same hash and the same challenge id (ARGV[12]) and deletes it;
///   a failure counts a try and kills the code after ARGV[12] tries.
/// - `passkey`: the node verified the assertion's signature (ARGV[2] `1`/`0`) against the challenge
///   it read from KEYS[3] (the pending passkey challenge, hash `h`, `cid`); the script requires
///   that same challenge, still pending and for this sign-in (ARGV[21], ARGV[11]), and deletes it
///   whatever the outcome (one assertion per challenge, on every node). Success also needs the
///   credential's stored signature counter (KEYS[8], field ARGV[22]) below the received one
///   (ARGV[23]) unless both are 0; a counter that did not advance is refused and recorded as
///   `passkey_counter_regressed` (a cloned authenticator). Success stores the new counter and
///   the time of use (field `<id>:used`).
///
/// It also writes what the attempt leaves behind, so that a sign-in costs this one round trip:
/// the user's security event (success, failure, replay, throttled) into their capped event log
/// (a list, newest first, one JSON object per event: see `Events.swift`), and on success the new
/// session's record into their session list. The node signs the session token after the script,
/// with the epoch the script returns.
///
/// KEYS: 1 user record (hash, fields `cred_version`, `epoch`, `totp_last`), 2 throttle (hash:
/// `fails`, `next_at` ms, `locked`), 3 the mode's record (`totp`: the step key, read as described
/// above), 4 IP-prefix failure counter, 5 challenge marker (set on success), 6 the user's session
/// list (hash), 7 the user's event log (list), 8 (passkey mode only) the passkeys' counters (hash).
/// ARGV: 1 expected credential version (`""` skips the check), 2 candidate (see modes),
/// 3 free failures, 4 maximum back-off ms, 5 lock after failures, 6 IP limit (`""`: the node
/// keeps the address budget with ``AddressBudgetScript``, on a Redis Cluster, where KEYS[4] is
/// then any key of the user's slot and is not touched), 7 IP window s,
/// 8 challenge-marker TTL s, 9 throttle TTL s, 10 mode, 11 challenge id,
/// 12 tries per email code, 13 session id to record on success (`""` = none), 14 its record (JSON),
/// 15 session-list TTL s, 16 write events (`1`/`0`), 17 event detail (the method), 18 client IP
/// (`""` = none), 19 events kept (the log is trimmed to that many), 20 event type on success (`""` = none),
/// 21–23 (passkey mode only) the challenge the node verified against, the credential id, the
/// received signature counter.
///
/// Replies: `{"ok", epoch}` (the user's security epoch from KEYS[1], read in the same atomic step,
/// so a sign-in needs no second read to stamp its session), `{"invalid", attempts_remaining, replay(0|1), wait_ms}`,
/// `{"throttled", wait_ms}`, `{"locked"}`, `{"ip_limited", ttl_s}`, `{"stale"}`, `{"consumed"}`.
public enum CodeCheckScript {
    public static let script = RedisScript(#"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function event(kind)
  if ARGV[16] ~= '1' or kind == '' then return end
  local e = {type = kind, at = math.floor(now / 1000)}
  if ARGV[18] ~= '' then e.ip = ARGV[18] end
  if ARGV[17] ~= '' then e.detail = ARGV[17] end
  local kept = tonumber(ARGV[19])
  if redis.call('LPUSH', KEYS[7], cjson.encode(e)) > kept then redis.call('LTRIM', KEYS[7], 0, kept - 1) end
end
local throttle = redis.call('HMGET', KEYS[2], 'locked', 'next_at', 'fails')
if throttle[1] == '1' then return {'locked'} end
if ARGV[6] ~= '' and tonumber(redis.call('GET', KEYS[4]) or '0') >= tonumber(ARGV[6]) then
  local ttl = redis.call('TTL', KEYS[4])
  if ttl < 1 then ttl = 1 end
  return {'ip_limited', ttl}
end
local nextAt = tonumber(throttle[2] or '0')
if now < nextAt then
  event('second_step_throttled')
  return {'throttled', nextAt - now}
end
local user = redis.call('HMGET', KEYS[1], 'cred_version', 'epoch', 'totp_last')
if ARGV[1] ~= '' and user[1] ~= ARGV[1] then return {'stale'} end
if redis.call('EXISTS', KEYS[5]) == 1 then return {'consumed'} end
local mode = ARGV[10]
local replay = 0
local function succeed()
  if throttle[1] or throttle[2] or throttle[3] then redis.call('DEL', KEYS[2]) end
  redis.call('SET', KEYS[5], '1', 'EX', tonumber(ARGV[8]))
  if ARGV[13] ~= '' then
    redis.call('HSET', KEYS[6], ARGV[13], ARGV[14])
    redis.call('EXPIRE', KEYS[6], tonumber(ARGV[15]))
  end
  event(ARGV[20])
  return {'ok', user[2] or '0'}
end
if mode == 'totp' then
  local step = tonumber(ARGV[2])
  if step >= 0 then
    local last = tonumber(user[3] or redis.call('GET', KEYS[3]) or '-1')
    if step > last then
      redis.call('HSET', KEYS[1], 'totp_last', ARGV[2])
      return succeed()
    end
    replay = 1
  end
elseif mode == 'set' then
  if ARGV[2] ~= '' and redis.call('SREM', KEYS[3], ARGV[2]) == 1 then return succeed() end
elseif mode == 'email' then
  local pending = redis.call('HMGET', KEYS[3], 'h', 'cid')
  if pending[1] and pending[2] == ARGV[11] then
    if pending[1] == ARGV[2] then
      redis.call('DEL', KEYS[3])
      return succeed()
    end
    if redis.call('HINCRBY', KEYS[3], 'tries', 1) >= tonumber(ARGV[12]) then redis.call('DEL', KEYS[3]) end
  end
elseif mode == 'passkey' then
  local pending = redis.call('HMGET', KEYS[3], 'h', 'cid')
  if pending[1] and pending[1] == ARGV[21] and pending[2] == ARGV[11] then
    redis.call('DEL', KEYS[3])
    if ARGV[2] == '1' then
      local stored = redis.call('HGET', KEYS[8], ARGV[22])
      if stored then
        stored = tonumber(stored)
        local received = tonumber(ARGV[23])
        if (stored ~= 0 or received ~= 0) and received <= stored then
          event('passkey_counter_regressed')
        else
          redis.call('HSET', KEYS[8], ARGV[22], ARGV[23], ARGV[22] .. ':used', tostring(math.floor(now / 1000)))
          return succeed()
        end
      end
    end
  end
else
  return redis.error_reply('unknown mode')
end
local free = tonumber(ARGV[3])
local fails = redis.call('HINCRBY', KEYS[2], 'fails', 1)
local wait = 0
if fails > free then
  local exponent = fails - free - 1
  if exponent > 30 then exponent = 30 end
  wait = 1000 * (2 ^ exponent)
  if wait > tonumber(ARGV[4]) then wait = tonumber(ARGV[4]) end
  redis.call('HSET', KEYS[2], 'next_at', now + wait)
end
if fails >= tonumber(ARGV[5]) then redis.call('HSET', KEYS[2], 'locked', '1') end
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[9]))
if ARGV[6] ~= '' and redis.call('INCR', KEYS[4]) == 1 then redis.call('EXPIRE', KEYS[4], tonumber(ARGV[7])) end
local remaining = free - fails
if remaining < 0 then remaining = 0 end
if replay == 1 then event('second_step_replay') else event('second_step_failed') end
return {'invalid', remaining, replay, wait}
"""#)
}

/// The per-address failure budget as its own call, for a Redis Cluster, where the address's
/// counter (`gh:ip:{<address>}`) lives in another slot than the user's keys and cannot be in
/// the code-check script.
///
/// A code check from a known address then costs two round trips, one after the other, each on
/// its master's pipelined connection: ``reserve`` on the address's master, then the code-check
/// script on the user's master (with ARGV[6] `""`). The reservation counts the attempt as a
/// failure before it is checked, so a burst of guesses from one address cannot overshoot the
/// limit by the guesses in flight. An attempt that turns out not to be a wrong code (accepted,
/// throttled, locked, already completed) owes its reservation back: the node keeps the refunds it
/// owes per address (``AddressRefunds``) and sends them with its next reservation for that
/// address, which takes them off before it checks the budget, so no third call is needed. Until
/// then the counter is high by the successes this node has not handed back yet — never low: an
/// error in either direction only makes the address wait sooner, and the budget only ever limits
/// that address, never the user.
public enum AddressBudgetScript {
    /// KEYS: 1 the address's counter. ARGV: 1 limit, 2 window s, 3 refunds owed (taken off first,
    /// never below zero, never creating the key).
    /// Replies: `{"ok"}` (reserved), `{"ip_limited", ttl_s}`.
    public static let reserve = RedisScript(#"""
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
local owed = tonumber(ARGV[3])
if owed > 0 and n > 0 then
  if owed > n then owed = n end
  n = redis.call('DECRBY', KEYS[1], owed)
end
if n >= tonumber(ARGV[1]) then
  local ttl = redis.call('TTL', KEYS[1])
  if ttl < 1 then ttl = 1 end
  return {'ip_limited', ttl}
end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2])) end
return {'ok'}
"""#)
}
