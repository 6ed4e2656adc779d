/*
 * track.c -- the ledger and its Lua scripts. Every write that must be
 * atomic with another (ledger state + event, batch + audience cursor,
 * outcome + XACK) is one script, and every message state change goes
 * through the one Lua setter below, generated from the C table in state.c.
 *
 * Key layout (prefix "gw:" by default; one {hash tag} prefix such as
 * "{gw}:" keeps every key in one Cluster slot):
 *   msg:<key>       ledger hash      campaign:<id>  campaign hash
 *   q:<channel>     work streams     events         state-change stream
 *   parked:<id>     paused messages  delayed        zset due-ms -> message
 */
#include "gw.h"

#include "../common/buf.h"
#include "../common/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

struct scripts gw_scripts;

/* ARGV[1..3] of every script: now (ms), events MAXLEN, ledger TTL (ms). */
static const char prelude[] =
/* what a customer's touch history records: a send and its outcome */
"local TOUCH = {accepted = true, delivered = true, bounced = true,\n"
"  failed = true, expired = true}\n"
"local NOW = ARGV[1]\n"
"local EVMAX = ARGV[2]\n"
"local TTL = ARGV[3]\n"
/* Campaign counters move with every message: their increments are summed
 * per script call and written once at its end (build() wraps each body so
 * flush() runs after it), a few HINCRBYs per batch instead of per message.
 * Nothing in a script reads them back. */
"local DELTA = {}\n"
"local function bump(k, f, n)\n"
"  local d = DELTA[k]\n"
"  if not d then d = {}; DELTA[k] = d end\n"
"  d[f] = (d[f] or 0) + n\n"
"end\n"
"local function flush()\n"
"  for k, d in pairs(DELTA) do\n"
"    for f, n in pairs(d) do\n"
"      if n ~= 0 then redis.call('HINCRBY', k, f, n) end\n"
"    end\n"
"  end\n"
"  DELTA = {}\n"
"end\n"
"local function event(ev, f)\n"
"  redis.call('XADD', ev, 'MAXLEN', '~', EVMAX, '*', unpack(f))\n"
"end\n"
/* The one setter: checks the transition, writes state and event, keeps
 * the campaign's per-state counts, and starts the TTL on a final state
 * or on accepted (an email over SMTP may never hear more).
 * cur is the entry as load() read it (the caller may have it already);
 * extra is field, value, ... written with the state and seen by the event.
 * Returns the old state, or false when the move is not allowed. */
"local FIELDS = {'state', 'key', 'campaign', 'customer', 'channel',\n"
"  'provider', 'provider_id', 'attempts', 'cost', 'template'}\n"
"local function load(mk)\n"
"  local m, v = redis.call('HMGET', mk, unpack(FIELDS)), {}\n"
"  for i = 1, #FIELDS do v[FIELDS[i]] = m[i] or '' end\n"
"  return v\n"
"end\n"
"local function setstate(mk, ev, ck, new, reason, extra, cur)\n"
"  local m = cur or load(mk)\n"
"  local old = m.state\n"
"  if not (ALLOWED[old] and ALLOWED[old][new]) then return false end\n"
"  local f = {'state', new, 'updated', NOW}\n"
"  if reason and reason ~= '' then f[#f+1] = 'reason'; f[#f+1] = reason end\n"
"  if extra then\n"
"    for i = 1, #extra, 2 do\n"
"      f[#f+1] = extra[i]; f[#f+1] = extra[i + 1]\n"
"      m[extra[i]] = extra[i + 1]\n"
"    end\n"
"  end\n"
"  redis.call('HSET', mk, unpack(f))\n"
"  m.state = new\n"
"  event(ev, {'type', 'state', 'msg', m.key, 'campaign', m.campaign,\n"
"    'customer', m.customer, 'channel', m.channel, 'provider', m.provider,\n"
"    'provider_id', m.provider_id, 'from', old, 'to', new,\n"
"    'reason', reason or '', 'attempt', m.attempts == '' and '0' or\n"
"    m.attempts, 'cost', m.cost == '' and '0' or m.cost, 'time', NOW})\n"
"  if TOUCH[new] and m.customer ~= '' and old ~= new then\n"
"    local ty = 'outcome'\n"
"    if old == 'sending' and (new == 'accepted' or new == 'delivered') then\n"
"      ty = 'send'\n"
"    end\n"
"    redis.call('XADD', PFX .. 'touch:' .. m.customer, 'MAXLEN', '~',\n"
"      TOUCHMAX, '*', 'type', ty, 'state', new, 'channel', m.channel,\n"
"      'msg', m.key, 'campaign', m.campaign, 'template', m.template,\n"
"      'provider', m.provider, 'cost', m.cost == '' and '0' or m.cost,\n"
"      'reason', reason or '', 'time', NOW)\n"
"  end\n"
"  if ck and old == 'sending' and (new == 'accepted' or new == 'delivered')\n"
"      then bump(ck, 'sent', 1) end\n"
"  if ck and old ~= new then\n"
"    bump(ck, 'n_' .. new, 1)\n"
"    if old ~= '' then bump(ck, 'n_' .. old, -1) end\n"
"  end\n"
"  if FINAL[new] or new == 'accepted' then redis.call('PEXPIRE', mk, TTL) end\n"
"  return old\n"
"end\n"
/* XDEL of the ids a batch acked, in slices (unpack has a stack limit). */
"local function xdel_all(s, ids)\n"
"  for i = 1, #ids, 500 do\n"
"    redis.call('XDEL', s, unpack(ids, i, math.min(i + 499, #ids)))\n"
"  end\n"
"end\n"
/* A receipt for one part of an accepted message. The message moves to its
 * final state when every part has one: delivered if all were, else failed
 * (or expired). A repeated receipt for a part changes nothing. */
"local function apply_receipt(mk, ev, id, rs, stat, err)\n"
"  local f = 'part:' .. id\n"
"  if redis.call('HSETNX', mk, f, rs) == 0 then return 'duplicate' end\n"
"  redis.call('HINCRBY', mk, 'parts_' .. rs, 1)\n"
"  if rs ~= 'delivered' then\n"
"    redis.call('HSET', mk, 'receipt_error', stat .. ' err:' .. err)\n"
"  end\n"
"  local done = redis.call('HINCRBY', mk, 'parts_final', 1)\n"
"  if done < tonumber(redis.call('HGET', mk, 'parts') or '1') then\n"
"    return 'part'\n"
"  end\n"
"  local camp = redis.call('HGET', mk, 'campaign')\n"
"  local ck = nil\n"
"  if camp and camp ~= '' then ck = PFX .. 'campaign:' .. camp end\n"
"  local new, reason = 'delivered', ''\n"
"  if tonumber(redis.call('HGET', mk, 'parts_failed') or '0') > 0 then\n"
"    new = 'failed'\n"
"  elseif tonumber(redis.call('HGET', mk, 'parts_expired') or '0') > 0 then\n"
"    new = 'expired'\n"
"  end\n"
"  if new ~= 'delivered' then\n"
"    reason = 'receipt: ' .. (redis.call('HGET', mk, 'receipt_error') or '')\n"
"  end\n"
"  if setstate(mk, ev, ck, new, reason, nil) then return new end\n"
"  return 'late'\n"
"end\n"
/* The setter's creation form: a new ledger entry moves '' -> queued
 * (checked against the same table) with its event, written from the
 * values at hand instead of read back, since creation is on the hot
 * path of every message. */
"local function create(mk, ev, ck, key, camp, cust, ch, prov, reason)\n"
"  if not ALLOWED[''][\"queued\"] then return false end\n"
"  redis.call('HSET', mk, 'key', key, 'campaign', camp, 'customer', cust,\n"
"    'channel', ch, 'provider', prov, 'attempts', 0, 'created', NOW,\n"
"    'state', 'queued', 'updated', NOW)\n"
"  event(ev, {'type', 'state', 'msg', key, 'campaign', camp,\n"
"    'customer', cust, 'channel', ch, 'provider', prov, 'provider_id', '',\n"
"    'from', '', 'to', 'queued', 'reason', reason or '', 'attempt', '0',\n"
"    'cost', '0', 'time', NOW})\n"
"  if ck then bump(ck, 'n_queued', 1) end\n"
"  return ''\n"
"end\n";

/* KEYS: campaign, queue, events, dead, ledger keys of the accepted items.
 * ARGV[4..]: expected cursor, new cursor, done, n_ok, n_rej, campaign,
 * channel, provider, then (key, customer, payload) per accepted item and
 * (reason, raw) per rejected one. The cursor check makes two expanders of
 * one campaign (a claim after a stall) unable to enqueue a batch twice. */
static const char expand_body[] =
"local ck, q, ev, dead = KEYS[1], KEYS[2], KEYS[3], KEYS[4]\n"
"local cur = redis.call('HGET', ck, 'cursor') or ''\n"
"if cur ~= ARGV[4] then return {'conflict', cur} end\n"
"local st = redis.call('HGET', ck, 'state')\n"
"if st ~= 'running' then return {st or 'missing', cur} end\n"
"local nok, nrej = tonumber(ARGV[7]), tonumber(ARGV[8])\n"
"local camp, ch, prov = ARGV[9], ARGV[10], ARGV[11]\n"
"local added, dups, a = 0, 0, 12\n"
"for i = 1, nok do\n"
"  local mk = KEYS[4 + i]\n"
"  if redis.call('EXISTS', mk) == 0 then\n"
"    create(mk, ev, ck, ARGV[a], camp, ARGV[a + 1], ch, prov, '')\n"
"    redis.call('XADD', q, '*', 'm', ARGV[a + 2])\n"
"    added = added + 1\n"
"  else dups = dups + 1 end\n"
"  a = a + 3\n"
"end\n"
"for i = 1, nrej do\n"
"  redis.call('XADD', dead, '*', 'reason', ARGV[a], 'class', 'recipient',\n"
"    'campaign', camp, 'recipient', ARGV[a + 1], 'time', NOW)\n"
"  event(ev, {'type', 'recipient_rejected', 'campaign', camp,\n"
"    'reason', ARGV[a], 'time', NOW})\n"
"  a = a + 2\n"
"end\n"
"redis.call('HSET', ck, 'cursor', ARGV[5])\n"
"redis.call('HINCRBY', ck, 'expanded', added)\n"
"if dups > 0 then redis.call('HINCRBY', ck, 'duplicates', dups) end\n"
"if nrej > 0 then redis.call('HINCRBY', ck, 'rejected', nrej) end\n"
"if ARGV[6] == '1' then\n"
"  redis.call('HSET', ck, 'expansion', 'done', 'expanded_at', NOW)\n"
"  event(ev, {'type', 'campaign', 'campaign', camp, 'to', 'expanded',\n"
"    'time', NOW})\n"
"end\n"
"return {'ok', added, dups, redis.call('XLEN', q)}\n";

/* Triggered messages. KEYS: jobs, events, then (ledger, queue) per item.
 * ARGV[4..]: group, n, then (id, key, customer, channel, provider,
 * payload) per item. The ledger makes a repeated job id a no-op. */
static const char enqueue_body[] =
"local jobs, ev, grp, n = KEYS[1], KEYS[2], ARGV[4], tonumber(ARGV[5])\n"
"local res, a, acked = {}, 6, {}\n"
"for i = 1, n do\n"
"  local mk, q = KEYS[1 + 2 * i], KEYS[2 + 2 * i]\n"
"  res[i] = 0\n"
"  if redis.call('XACK', jobs, grp, ARGV[a]) == 1 then\n"
"    if redis.call('EXISTS', mk) == 0 then\n"
"      create(mk, ev, nil, ARGV[a + 1], '', ARGV[a + 2], ARGV[a + 3],\n"
"        ARGV[a + 4], '')\n"
"      redis.call('XADD', q, '*', 'm', ARGV[a + 5])\n"
"      res[i] = 1\n"
"    end\n"
"    acked[#acked + 1] = ARGV[a]\n"
"  end\n"
"  a = a + 6\n"
"end\n"
"xdel_all(jobs, acked)\n"
"return res\n";

/* KEYS: source stream, dead, events. ARGV[4..]: group, n, then (id, class,
 * reason, raw) per entry. Dead letter and ack are one step; XACK answering
 * 0 means a replay after a lost reply, which must not write twice. */
static const char dead_body[] =
"local src, dead, ev, grp, n = KEYS[1], KEYS[2], KEYS[3], ARGV[4],\n"
"  tonumber(ARGV[5])\n"
"local a = 6\n"
"for i = 1, n do\n"
"  if redis.call('XACK', src, grp, ARGV[a]) == 1 then\n"
"    redis.call('XADD', dead, '*', 'job', ARGV[a + 3], 'reason',\n"
"      ARGV[a + 2], 'class', ARGV[a + 1], 'stream', src, 'entry', ARGV[a],\n"
"      'time', NOW)\n"
"    event(ev, {'type', 'job_dead', 'stream', src, 'entry', ARGV[a],\n"
"      'class', ARGV[a + 1], 'reason', ARGV[a + 2], 'time', NOW})\n"
"    redis.call('XDEL', src, ARGV[a])\n"
"  end\n"
"  a = a + 4\n"
"end\n"
"return n\n";

/* KEYS: campaign, events. ARGV[4..]: definition (the job), id, channel,
 * provider, template. An existing campaign is left alone (job ids are
 * idempotency keys); its state and cursor come back either way. */
static const char campaign_body[] =
"local ck, ev = KEYS[1], KEYS[2]\n"
"if redis.call('EXISTS', ck) == 1 then\n"
"  local m = redis.call('HMGET', ck, 'state', 'cursor', 'expansion')\n"
"  return {'exists', m[1] or '', m[2] or '', m[3] or ''}\n"
"end\n"
"redis.call('SADD', PFX .. 'campaigns', ARGV[5])\n"
"redis.call('HSET', ck, 'def', ARGV[4], 'id', ARGV[5], 'channel', ARGV[6],\n"
"  'provider', ARGV[7], 'template', ARGV[8], 'state', 'running',\n"
"  'cursor', '', 'expanded', 0, 'created', NOW)\n"
"event(ev, {'type', 'campaign', 'campaign', ARGV[5], 'to', 'running',\n"
"  'time', NOW})\n"
"return {'new', 'running', '', ''}\n";

/* KEYS: campaign, events, parked, q:email, q:sms, q:fax. ARGV[4..]:
 * action, limit (parked messages moved per call).
 * Resume and cancel both move parked messages back to the queue: the
 * dispatcher then sends them or records them cancelled. */
static const char control_body[] =
"local ck, ev, parked = KEYS[1], KEYS[2], KEYS[3]\n"
"local act, lim = ARGV[4], tonumber(ARGV[5])\n"
"local st = redis.call('HGET', ck, 'state')\n"
"if not st then return {'missing', 0, 0, ''} end\n"
"local queues = {email = KEYS[4], sms = KEYS[5], fax = KEYS[6]}\n"
"local q = queues[redis.call('HGET', ck, 'channel')]\n"
"local to = st\n"
"if act == 'pause' and st == 'running' then to = 'paused'\n"
"elseif act == 'resume' and st == 'paused' then to = 'running'\n"
"elseif act == 'cancel' and st ~= 'cancelled' then to = 'cancelled' end\n"
"if to ~= st then\n"
"  redis.call('HSET', ck, 'state', to, 'updated', NOW)\n"
"  event(ev, {'type', 'campaign', 'campaign', redis.call('HGET', ck, 'id'),\n"
"    'from', st, 'to', to, 'time', NOW})\n"
"end\n"
"local moved = 0\n"
"if to ~= 'paused' then\n"
"  local items = redis.call('LRANGE', parked, 0, lim - 1)\n"
"  for _, p in ipairs(items) do redis.call('XADD', q, '*', 'm', p) end\n"
"  if #items > 0 then redis.call('LTRIM', parked, #items, -1) end\n"
"  moved = #items\n"
"end\n"
"return {to, moved, redis.call('LLEN', parked),\n"
"  redis.call('HGET', ck, 'expansion') or ''}\n";

/* KEYS: events, then (ledger, campaign-or-ledger, suppress:<channel>,
 * suppress:customer) per message. ARGV[4..]: n, longest frequency cap
 * window (ms), then (has_campaign, expires_ms, resend_in_doubt, address,
 * customer, system, cap rules, class, channel, message key, estimated
 * cost, campaign budget, template, campaign id) each. Moves
 * each message to sending unless its ledger, campaign, an opt-out, a
 * frequency cap or its deadline says otherwise (system replies such as a
 * STOP confirmation are not suppressed or capped). Cap rules are lines of
 * "name\tmax\twindow_ms\tscope\tclass"; freq:<customer> holds
 * "class|channel|key" members scored by send time, and a message counts
 * once however often it is retried. A campaign with a budget commits
 * each message's estimated cost (campaign field `committed`; the finish
 * script settles it to the real cost) and caps what would exceed it.
 * Replies one string per message. */
static const char begin_body[] =
"local ev, n, maxwin = KEYS[1], tonumber(ARGV[4]), tonumber(ARGV[5])\n"
"local res, a = {}, 6\n"
/* the rule and counts of the last cap hit, for the ledger's reason */
"local CAPPED = ''\n"
"local function capped(cust, rules, cls, ch, key)\n"
"  if rules == '' or cust == '' then return nil end\n"
"  local fk = PFX .. 'freq:' .. cust\n"
"  local now = tonumber(NOW)\n"
"  for name, mx, win, scope, rc in string.gmatch(rules,\n"
"      '([^\\t\\n]*)\\t([^\\t\\n]*)\\t([^\\t\\n]*)\\t([^\\t\\n]*)\\t([^\\t\\n]*)\\n') do\n"
"    local cnt = 0\n"
"    for _, m in ipairs(redis.call('ZRANGEBYSCORE', fk, now - tonumber(win),\n"
"        '+inf')) do\n"
"      local mc, mch, mk = string.match(m, '^([^|]*)|([^|]*)|(.*)$')\n"
"      if mk ~= key and (scope == 'all' or scope == mch) and\n"
"          (rc == 'all' or rc == mc) then cnt = cnt + 1 end\n"
"    end\n"
"    if cnt >= tonumber(mx) then\n"
"      CAPPED = 'frequency cap ' .. name .. ': ' .. cnt .. ' of ' .. mx ..\n"
"        ' in ' .. math.floor(tonumber(win) / 1000) .. ' s'\n"
"      return true\n"
"    end\n"
"  end\n"
"  redis.call('ZADD', fk, 'NX', now, cls .. '|' .. ch .. '|' .. key)\n"
"  redis.call('ZREMRANGEBYSCORE', fk, '-inf', now - maxwin)\n"
"  redis.call('PEXPIRE', fk, maxwin + 60000)\n"
"  return nil\n"
"end\n"
"for i = 1, n do\n"
"  local mk, ck = KEYS[4 * i - 2], nil\n"
"  local sup_ch, sup_cust = KEYS[4 * i], KEYS[4 * i + 1]\n"
"  if ARGV[a] == '1' then ck = KEYS[4 * i - 1] end\n"
"  local exp = tonumber(ARGV[a + 1])\n"
"  local addr, cust, system = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]\n"
"  local cur = load(mk)\n"
"  local st = cur.state\n"
"  local cst = ck and redis.call('HGET', ck, 'state')\n"
"  if st == '' then res[i] = 'missing'\n"
"  elseif FINAL[st] then res[i] = 'final:' .. st\n"
"  elseif cst == 'cancelled' then\n"
"    setstate(mk, ev, ck, 'cancelled', 'campaign cancelled', nil, cur)\n"
"    res[i] = 'skip:cancelled'\n"
"  elseif cst == 'paused' then res[i] = 'paused'\n"
"  elseif st ~= 'sending' and system ~= '1' and\n"
"      (redis.call('SISMEMBER', sup_ch, addr) == 1 or\n"
"       (cust ~= '' and redis.call('SISMEMBER', sup_cust, cust) == 1) or\n"
"       (ARGV[a + 13] ~= '' and redis.call('SISMEMBER', PFX .. 'unsub:' ..\n"
"          ARGV[a + 13], cust ~= '' and cust or addr) == 1)) then\n"
"    setstate(mk, ev, ck, 'suppressed', 'opted out', nil, cur)\n"
"    res[i] = 'skip:suppressed'\n"
"  elseif exp > 0 and tonumber(NOW) > exp then\n"
"    setstate(mk, ev, ck, 'expired', 'deadline passed before sending', nil,\n"
"      cur)\n"
"    res[i] = 'skip:expired'\n"
"  elseif st ~= 'sending' and ck and tonumber(ARGV[a + 11]) > 0 and\n"
"      tonumber(redis.call('HGET', ck, 'committed') or '0') +\n"
"      tonumber(ARGV[a + 10]) > tonumber(ARGV[a + 11]) + 1e-9 then\n"
"    setstate(mk, ev, ck, 'capped', 'budget: the campaign reached its '\n"
"      .. 'budget of ' .. ARGV[a + 11], nil, cur)\n"
"    res[i] = 'skip:capped'\n"
"  elseif st ~= 'sending' and system ~= '1' and\n"
"      capped(cust, ARGV[a + 6], ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]) then\n"
"    setstate(mk, ev, ck, 'capped', CAPPED, nil, cur)\n"
"    res[i] = 'skip:capped'\n"
"  elseif st == 'sending' and ARGV[a + 2] ~= '1' then\n"
"    setstate(mk, ev, ck, 'failed',\n"
"      'in doubt after a restart; held (in_doubt = hold)', nil, cur)\n"
"    res[i] = 'skip:failed'\n"
"  else\n"
"    if ck and tonumber(ARGV[a + 11]) > 0 and st ~= 'sending' then\n"
"      redis.call('HINCRBYFLOAT', ck, 'committed', ARGV[a + 10])\n"
"    end\n"
"    local att = (tonumber(cur.attempts) or 0) + 1\n"
"    local r = ''\n"
"    if st == 'sending' then r = 'in doubt after a restart; sending again' end\n"
"    local extra = {'attempts', tostring(att)}\n"
"    if ARGV[a + 12] ~= '' then\n"
"      extra[3] = 'template'; extra[4] = ARGV[a + 12]\n"
"    end\n"
"    setstate(mk, ev, ck, 'sending', r, extra, cur)\n"
"    res[i] = 'go:' .. st .. ':' .. att\n"
"  end\n"
"  a = a + 14\n"
"end\n"
"return res\n";

/* KEYS: events, queue, delayed, then (ledger, campaign-or-ledger, parked)
 * per message. ARGV[4..]: group, n, then (id, has_campaign, state, reason,
 * provider_ids, park_payload, due_ms, delayed_member, message key,
 * keep_payload, expires_ms, units, cost, committed, suppress) each;
 * suppress is an address a hard bounce puts on suppress:email; cost ('' when
 * not accepted) is the message's price, committed what the begin script
 * set aside against the campaign's budget; keep_payload is kept on the
 * ledger of an accepted message that a later receipt may send again (fax),
 * units (pages, segments) on every accepted one. Outcome and
 * ack are one step, so an ack never lands without its outcome; XACK
 * answering 0 marks a replay after a lost reply, which changes nothing. */
static const char finish_body[] =
"local ev, q, delayed, grp, n = KEYS[1], KEYS[2], KEYS[3], ARGV[4],\n"
"  tonumber(ARGV[5])\n"
"local a, acked = 6, {}\n"
"for i = 1, n do\n"
"  local mk, ck, pk = KEYS[1 + 3 * i], nil, KEYS[3 + 3 * i]\n"
"  if ARGV[a + 1] == '1' then ck = KEYS[2 + 3 * i] end\n"
"  local new = ARGV[a + 2]\n"
"  if redis.call('XACK', q, grp, ARGV[a]) == 1 then\n"
"    if new ~= '' then\n"
"      local extra = {}\n"
"      if ARGV[a + 4] ~= '' then extra = {'provider_id', ARGV[a + 4]} end\n"
"      if ARGV[a + 12] ~= '' then\n"
"        extra[#extra + 1] = 'cost'; extra[#extra + 1] = ARGV[a + 12]\n"
"      end\n"
"      if ARGV[a + 14] ~= '' then\n"
"        redis.call('SADD', PFX .. 'suppress:email', ARGV[a + 14])\n"
"      end\n"
"      local moved = setstate(mk, ev, ck, new, ARGV[a + 3], extra)\n"
"      if moved and ck then\n"
"        local est = tonumber(ARGV[a + 13])\n"
"        if ARGV[a + 12] ~= '' then\n"
"          redis.call('HINCRBYFLOAT', ck, 'cost', ARGV[a + 12])\n"
"          est = est - tonumber(ARGV[a + 12])\n"
"        end\n"
"        if est ~= 0 then redis.call('HINCRBYFLOAT', ck, 'committed', -est) end\n"
"      end\n"
"      if moved and new == 'accepted' then\n"
"        if ARGV[a + 9] ~= '' then\n"
"          redis.call('HSET', mk, 'payload', ARGV[a + 9], 'expires',\n"
"            ARGV[a + 10])\n"
"        end\n"
"        if ARGV[a + 11] ~= '0' then redis.call('HSET', mk, 'units', ARGV[a + 11]) end\n"
"      end\n"
"      if moved and new == 'accepted' and ARGV[a + 4] ~= '' then\n"
/* every part's id leads to the message; receipts that came first wait
 * under rcpt: and are applied now */
"        local prov = redis.call('HGET', mk, 'provider') or ''\n"
"        local ids = {}\n"
"        for id in string.gmatch(ARGV[a + 4], '[^,]+') do ids[#ids + 1] = id end\n"
"        redis.call('HSET', mk, 'parts', #ids)\n"
"        for _, id in ipairs(ids) do\n"
"          redis.call('SET', PFX .. 'pid:' .. prov .. ':' .. id, ARGV[a + 8],\n"
"            'PX', TTL)\n"
"        end\n"
"        for _, id in ipairs(ids) do\n"
"          local rk = PFX .. 'rcpt:' .. prov .. ':' .. id\n"
"          local early = redis.call('GET', rk)\n"
"          if early then\n"
"            local rs, stat, err = string.match(early, '^([^\\t]*)\\t([^\\t]*)\\t(.*)$')\n"
"            apply_receipt(mk, ev, id, rs, stat, err)\n"
"            redis.call('DEL', rk)\n"
"          end\n"
"        end\n"
"      end\n"
"      if new == 'deferred' and (moved or\n"
"          redis.call('HGET', mk, 'state') == 'deferred') then\n"
"        redis.call('HSET', mk, 'next_attempt', ARGV[a + 6])\n"
"        redis.call('ZADD', delayed, ARGV[a + 6], ARGV[a + 7])\n"
"      end\n"
"    end\n"
"    if ARGV[a + 5] ~= '' then\n"
"      if ck and redis.call('HGET', ck, 'state') == 'paused' then\n"
"        redis.call('RPUSH', pk, ARGV[a + 5])\n"
"      else\n"
/* resumed or cancelled since the batch began: back into the queue */
"        redis.call('XADD', q, '*', 'm', ARGV[a + 5])\n"
"      end\n"
"    end\n"
"    acked[#acked + 1] = ARGV[a]\n"
"  end\n"
"  a = a + 15\n"
"end\n"
"xdel_all(q, acked)\n"
"return n\n";

/* KEYS: events, delayed. ARGV[4..]: provider, id, receipt state
 * (delivered | failed | expired | retry), the provider's stat word, error,
 * then for retry: backoff base ms, cap ms, max attempts, jitter in [0,1).
 * A receipt whose id is not known yet (it beat the submit response, or the
 * outcome is still on its way to Redis) is kept under rcpt: for the finish
 * script. `retry` (a fax line was busy) sends the message again within its
 * deadline: only for the message's current provider id, once per id.
 * Returns {what happened, the message's channel}: a new state, retry
 * (deferred), part, duplicate, late or early. */
static const char receipt_body[] =
"local prov, id, rs, stat, err = ARGV[4], ARGV[5], ARGV[6], ARGV[7],\n"
"  ARGV[8]\n"
"local mk = redis.call('GET', PFX .. 'pid:' .. prov .. ':' .. id)\n"
"if not mk then\n"
"  redis.call('SET', PFX .. 'rcpt:' .. prov .. ':' .. id,\n"
"    rs .. '\\t' .. stat .. '\\t' .. err, 'PX', 86400000)\n"
"  return {'early', ''}\n"
"end\n"
"mk = PFX .. 'msg:' .. mk\n"
"if rs ~= 'retry' then\n"
"  local r = apply_receipt(mk, KEYS[1], id, rs, stat, err)\n"
"  return {r, redis.call('HGET', mk, 'channel') or ''}\n"
"end\n"
"if redis.call('HSETNX', mk, 'part:' .. id, 'retry') == 0 then\n"
"  return {'duplicate', ''}\n"
"end\n"
"local m = redis.call('HMGET', mk, 'state', 'provider_id', 'attempts',\n"
"  'payload', 'expires', 'campaign', 'channel')\n"
"if m[1] ~= 'accepted' or m[2] ~= id or not m[4] then\n"
"  return {'late', ''}\n"
"end\n"
"local ck = nil\n"
"if m[6] and m[6] ~= '' then ck = PFX .. 'campaign:' .. m[6] end\n"
"local att = tonumber(m[3] or '1')\n"
"local d = tonumber(ARGV[9])\n"
"for i = 2, att do if d < tonumber(ARGV[10]) then d = d * 2 end end\n"
"if d > tonumber(ARGV[10]) then d = tonumber(ARGV[10]) end\n"
"local due = tonumber(NOW) + math.floor(d / 2 + d / 2 * tonumber(ARGV[12]))\n"
"local why = stat .. ': ' .. err\n"
"local exp = tonumber(m[5] or '0')\n"
"if att >= tonumber(ARGV[11]) then\n"
"  setstate(mk, KEYS[1], ck, 'failed', why .. ' after ' .. att ..\n"
"    ' attempts', nil)\n"
"  return {'failed', m[7] or ''}\n"
"elseif exp > 0 and due > exp then\n"
"  setstate(mk, KEYS[1], ck, 'expired', why .. '; deadline reached', nil)\n"
"  return {'expired', m[7] or ''}\n"
"end\n"
"setstate(mk, KEYS[1], ck, 'deferred', why .. '; retrying', nil)\n"
"local chi = {email = 0, sms = 1, fax = 2}\n"
"redis.call('HSET', mk, 'next_attempt', due)\n"
"redis.call('ZADD', KEYS[2], due, (chi[m[7]] or 2) .. '|' .. m[4])\n"
"return {'retry', m[7] or ''}\n";

/* KEYS: events. ARGV[4..]: provider, fax id, from, to, stored path,
 * pages, touch history cap. An inbound fax is recorded once per fax id:
 * an event for the CRM, and an entry on the touch history of the customer
 * whose fax number it came from (through cidx:fax:<number>), or the event
 * says unmatched. */
static const char faxin_body[] =
"local ev, prov, id, from, to = KEYS[1], ARGV[4], ARGV[5], ARGV[6], ARGV[7]\n"
"if not redis.call('SET', PFX .. 'faxin:' .. prov .. ':' .. id, NOW, 'NX',\n"
"    'PX', TTL) then\n"
"  return 'duplicate'\n"
"end\n"
"local cust = redis.call('GET', PFX .. 'cidx:fax:' .. from) or ''\n"
"if cust ~= '' then\n"
"  redis.call('XADD', PFX .. 'touch:' .. cust, 'MAXLEN', '~', ARGV[10], '*',\n"
"    'type', 'fax_in', 'channel', 'fax', 'provider', prov, 'fax_id', id,\n"
"    'from', from, 'to', to, 'path', ARGV[8], 'pages', ARGV[9], 'time', NOW)\n"
"end\n"
"event(ev, {'type', 'fax_in', 'provider', prov, 'fax_id', id, 'from', from,\n"
"  'to', to, 'path', ARGV[8], 'pages', ARGV[9], 'customer', cust,\n"
"  'matched', cust ~= '' and '1' or '0', 'time', NOW})\n"
"if cust == '' then return 'unmatched' end\n"
"return cust\n";

/* KEYS: events, suppress:sms, q:sms. ARGV[4..]: action (stop | start |
 * help | none), from, to, text, provider, reply key ('' = no reply),
 * reply payload. Every MO is an event (and a touch of the customer whose
 * phone number sent it, through cidx:phone:<number>); STOP adds the number to the SMS
 * suppression set and START removes it, in the same step as the reply is
 * queued. */
static const char mo_body[] =
"local ev, sup, q = KEYS[1], KEYS[2], KEYS[3]\n"
"local act, from, prov, rkey = ARGV[4], ARGV[5], ARGV[8], ARGV[9]\n"
"local cust = redis.call('GET', PFX .. 'cidx:phone:' .. from) or ''\n"
"event(ev, {'type', 'mo', 'from', from, 'to', ARGV[6], 'text', ARGV[7],\n"
"  'action', act, 'provider', prov, 'customer', cust, 'time', NOW})\n"
"if cust ~= '' then\n"
"  redis.call('XADD', PFX .. 'touch:' .. cust, 'MAXLEN', '~', TOUCHMAX, '*',\n"
"    'type', 'mo', 'channel', 'sms', 'from', from, 'text', ARGV[7],\n"
"    'action', act, 'provider', prov, 'time', NOW)\n"
"end\n"
"if act == 'stop' then redis.call('SADD', sup, from)\n"
"elseif act == 'start' then redis.call('SREM', sup, from) end\n"
"if rkey ~= '' then\n"
"  local mk = PFX .. 'msg:' .. rkey\n"
"  if redis.call('EXISTS', mk) == 0 then\n"
"    create(mk, ev, nil, rkey, '', '', 'sms', prov, 'reply to ' .. act)\n"
"    redis.call('XADD', q, '*', 'm', ARGV[10])\n"
"  end\n"
"end\n"
"return act\n";

/* KEYS: jobs, events, remind. ARGV[4..]: group, entry id, customer id,
 * customer JSON, email, phone, fax, n, then (rule, next firing ms or '',
 * period) per reminder rule. Upserts cust:<id>, keeps the contact indexes
 * cidx:<email|phone|fax>:<address> -> id, and (re)schedules the
 * customer's reminders in the remind zset (member "<rule>|<customer>").
 * The job is acked in the same step. */
static const char customer_body[] =
"local jobs, ev, rz = KEYS[1], KEYS[2], KEYS[3]\n"
"local grp, id, cust = ARGV[4], ARGV[5], ARGV[6]\n"
"if redis.call('XACK', jobs, grp, id) == 0 then return 'replay' end\n"
"local ck = PFX .. 'cust:' .. cust\n"
"local kinds = {'email', 'phone', 'fax'}\n"
"local old = redis.call('HMGET', ck, 'email', 'phone', 'fax')\n"
"for i = 1, 3 do\n"
"  local new = ARGV[7 + i]\n"
"  if old[i] and old[i] ~= '' and old[i] ~= new then\n"
"    local ik = PFX .. 'cidx:' .. kinds[i] .. ':' .. old[i]\n"
"    if redis.call('GET', ik) == cust then redis.call('DEL', ik) end\n"
"  end\n"
"  if new ~= '' then\n"
"    redis.call('SET', PFX .. 'cidx:' .. kinds[i] .. ':' .. new, cust)\n"
"  end\n"
"end\n"
"redis.call('HSET', ck, 'doc', ARGV[7], 'email', ARGV[8], 'phone', ARGV[9],\n"
"  'fax', ARGV[10], 'updated', NOW)\n"
"local n, a = tonumber(ARGV[11]), 12\n"
"for i = 1, n do\n"
"  local m = ARGV[a] .. '|' .. cust\n"
"  if ARGV[a + 1] == '' then\n"
"    redis.call('ZREM', rz, m)\n"
"    redis.call('HDEL', ck, 'period:' .. ARGV[a])\n"
"  else\n"
"    redis.call('ZADD', rz, ARGV[a + 1], m)\n"
"    redis.call('HSET', ck, 'period:' .. ARGV[a], ARGV[a + 2])\n"
"  end\n"
"  a = a + 3\n"
"end\n"
"event(ev, {'type', 'customer', 'customer', cust, 'time', NOW})\n"
"redis.call('XDEL', jobs, id)\n"
"return 'ok'\n";

/* KEYS: remind. ARGV[4..]: limit, lease ms. Due reminders are leased (their
 * score moves lease ms ahead) so that one process fires each; a process
 * that dies with a lease lets it come due again, and the ledger key makes
 * the second firing a no-op. Returns (member, customer JSON, period). */
static const char remind_due_body[] =
"local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', NOW, 'LIMIT', 0,\n"
"  tonumber(ARGV[4]))\n"
"local out = {}\n"
"for _, m in ipairs(due) do\n"
"  redis.call('ZADD', KEYS[1], tonumber(NOW) + tonumber(ARGV[5]), m)\n"
"  local rule, cust = string.match(m, '^([^|]*)|(.*)$')\n"
"  local r = redis.call('HMGET', PFX .. 'cust:' .. cust, 'doc',\n"
"    'period:' .. rule)\n"
"  out[#out + 1] = {m, r[1] or '', r[2] or ''}\n"
"end\n"
"return out\n";

/* KEYS: events, remind, then (ledger, queue) per message. ARGV[4..]:
 * member, period fired, next firing ms or '', next period, customer, n,
 * then (key, channel, provider, payload) per message. Each (rule,
 * customer, period) makes its messages once: the ledger key holds the
 * period. The next firing is stored unless a customer upsert moved the
 * reminder meanwhile (its period changed). */
static const char remind_fire_body[] =
"local ev, rz = KEYS[1], KEYS[2]\n"
"local m, period, nxt, nperiod, cust = ARGV[4], ARGV[5], ARGV[6],\n"
"  ARGV[7], ARGV[8]\n"
"local rule = string.match(m, '^([^|]*)|')\n"
"local ck = PFX .. 'cust:' .. cust\n"
"local n, a, made = tonumber(ARGV[9]), 10, 0\n"
"for i = 1, n do\n"
"  local mk, q = KEYS[1 + 2 * i], KEYS[2 + 2 * i]\n"
"  if redis.call('EXISTS', mk) == 0 then\n"
"    create(mk, ev, nil, ARGV[a], '', cust, ARGV[a + 1], ARGV[a + 2],\n"
"      'reminder ' .. rule .. ' ' .. period)\n"
"    redis.call('XADD', q, '*', 'm', ARGV[a + 3])\n"
"    made = made + 1\n"
"  end\n"
"  a = a + 4\n"
"end\n"
"if (redis.call('HGET', ck, 'period:' .. rule) or '') == period then\n"
"  if nxt == '' then\n"
"    redis.call('ZREM', rz, m)\n"
"    redis.call('HDEL', ck, 'period:' .. rule)\n"
"  else\n"
"    redis.call('ZADD', rz, nxt, m)\n"
"    redis.call('HSET', ck, 'period:' .. rule, nperiod)\n"
"  end\n"
"end\n"
"return made\n";

/* KEYS: events, jobs (or events again). ARGV[4..]: group, entry id ('':
 * not from the queue), conversion id, customer, amount, currency, time of
 * the conversion (ms), attribution window (ms), touch cap. A conversion
 * counts once per id. Its revenue goes to the campaigns whose messages
 * reached the customer inside the window before it (the customer's touch
 * history, `send` entries): all of it to the last one (last touch), and an
 * equal share to each (linear); both kept on the campaign. Returns
 * {'ok'|'duplicate', last campaign, touches}. */
static const char conversion_body[] =
"local ev, jobs, grp, eid = KEYS[1], KEYS[2], ARGV[4], ARGV[5]\n"
"local id, cust, amount = ARGV[6], ARGV[7], tonumber(ARGV[8])\n"
"local at, win = tonumber(ARGV[10]), tonumber(ARGV[11])\n"
"if eid ~= '' then\n"
"  if redis.call('XACK', jobs, grp, eid) == 0 then return {'replay', '', 0} end\n"
"  redis.call('XDEL', jobs, eid)\n"
"end\n"
"if not redis.call('SET', PFX .. 'conv:' .. id, NOW, 'NX', 'PX',\n"
"    win + TTL) then\n"
"  return {'duplicate', '', 0}\n"
"end\n"
"local tk = PFX .. 'touch:' .. cust\n"
"local hits = {}\n"
"for _, e in ipairs(redis.call('XRANGE', tk, math.max(0, at - win), at)) do\n"
"  local f = {}\n"
"  for k = 1, #e[2], 2 do f[e[2][k]] = e[2][k + 1] end\n"
"  if f.type == 'send' and f.campaign and f.campaign ~= '' then\n"
"    hits[#hits + 1] = f.campaign\n"
"  end\n"
"end\n"
"local last = hits[#hits] or ''\n"
"if last ~= '' then\n"
"  local lk = PFX .. 'campaign:' .. last\n"
"  redis.call('HINCRBYFLOAT', lk, 'revenue_last', amount)\n"
"  redis.call('HINCRBY', lk, 'conversions_last', 1)\n"
"  local share = amount / #hits\n"
"  for _, c in ipairs(hits) do\n"
"    local k = PFX .. 'campaign:' .. c\n"
"    redis.call('HINCRBYFLOAT', k, 'revenue_linear', share)\n"
"    redis.call('HINCRBYFLOAT', k, 'conversions_linear', 1 / #hits)\n"
"  end\n"
"else\n"
"  redis.call('HINCRBYFLOAT', PFX .. 'unattributed', 'revenue', amount)\n"
"  redis.call('HINCRBY', PFX .. 'unattributed', 'conversions', 1)\n"
"end\n"
"redis.call('XADD', tk, 'MAXLEN', '~', ARGV[12], '*', 'type', 'conversion',\n"
"  'id', id, 'amount', ARGV[8], 'currency', ARGV[9], 'campaign', last,\n"
"  'time', NOW)\n"
"event(ev, {'type', 'conversion', 'id', id, 'customer', cust, 'amount',\n"
"  ARGV[8], 'currency', ARGV[9], 'last_touch', last, 'touches', #hits,\n"
"  'campaigns', table.concat(hits, ','), 'time', NOW})\n"
"return {'ok', last, #hits}\n";

/* KEYS: campaigns (set). ARGV[4..]: limit. One row per campaign: id and
 * the counters the ROI report needs. */
static const char roi_body[] =
"local ids = redis.call('SMEMBERS', KEYS[1])\n"
"table.sort(ids)\n"
"local out = {}\n"
"for i = 1, math.min(#ids, tonumber(ARGV[4])) do\n"
"  local m = redis.call('HMGET', PFX .. 'campaign:' .. ids[i], 'channel',\n"
"    'expanded', 'sent', 'n_delivered', 'n_bounced', 'unsubscribed',\n"
"    'opens_human', 'opens_machine', 'clicks', 'clicks_machine',\n"
"    'conversions_last', 'conversions_linear', 'revenue_last',\n"
"    'revenue_linear', 'cost')\n"
"  local row = {ids[i]}\n"
"  for k = 1, 15 do row[k + 1] = m[k] or '' end\n"
"  out[#out + 1] = row\n"
"end\n"
"return out\n";

/* KEYS: events. ARGV[4..]: scope (campaign | channel | all), channel,
 * campaign, customer, address, touch cap, how (one-click | page). Adds
 * the customer (or address) to unsub:<campaign>, the address to
 * suppress:<channel>, or the customer to suppress:customer (and the
 * address to its channel's set); the begin script checks all three. Once:
 * a repeated request changes nothing and records nothing. */
static const char unsub_body[] =
"local ev, scope, ch, camp, cust, addr = KEYS[1], ARGV[4], ARGV[5], ARGV[6],\n"
"  ARGV[7], ARGV[8]\n"
"local added = 0\n"
"if scope == 'campaign' and camp ~= '' then\n"
"  local who = cust\n"
"  if who == '' then who = addr end\n"
"  added = redis.call('SADD', PFX .. 'unsub:' .. camp, who)\n"
"elseif scope == 'all' then\n"
"  if cust ~= '' then\n"
"    added = redis.call('SADD', PFX .. 'suppress:customer', cust)\n"
"  end\n"
"  if addr ~= '' then\n"
"    added = added + redis.call('SADD', PFX .. 'suppress:' .. ch, addr)\n"
"  end\n"
"else\n"
"  scope = 'channel'\n"
"  if addr ~= '' then\n"
"    added = redis.call('SADD', PFX .. 'suppress:' .. ch, addr)\n"
"  end\n"
"end\n"
"if added > 0 then\n"
"  if camp ~= '' then\n"
"    redis.call('HINCRBY', PFX .. 'campaign:' .. camp, 'unsubscribed', 1)\n"
"  end\n"
"  event(ev, {'type', 'unsubscribe', 'scope', scope, 'channel', ch,\n"
"    'campaign', camp, 'customer', cust, 'address', addr, 'via', ARGV[10],\n"
"    'time', NOW})\n"
"  if cust ~= '' then\n"
"    redis.call('XADD', PFX .. 'touch:' .. cust, 'MAXLEN', '~', ARGV[9],\n"
"      '*', 'type', 'unsubscribe', 'scope', scope, 'channel', ch,\n"
"      'campaign', camp, 'time', NOW)\n"
"  end\n"
"end\n"
"return added\n";

/* KEYS: events. ARGV[4..]: open | click, message key, campaign, customer,
 * machine rule ('' = looks human), URL, seconds-after-delivery threshold
 * (ms), touch cap. A hit within the threshold of the hand-over is a
 * machine's too. The campaign counts each message's first human open and
 * click once (opens_human, clicks) and every machine hit; each hit is an
 * event and a touch. */
static const char hit_body[] =
"local kind, key, camp, cust, rule = ARGV[4], ARGV[5], ARGV[6], ARGV[7],\n"
"  ARGV[8]\n"
"local mk = PFX .. 'msg:' .. key\n"
"local m = redis.call('HMGET', mk, 'state', 'updated')\n"
"if rule == '' and (m[1] == 'accepted' or m[1] == 'delivered') and m[2]\n"
"    and tonumber(NOW) - tonumber(m[2]) < tonumber(ARGV[10]) then\n"
"  rule = 'time:' .. kind\n"
"end\n"
"local f = kind == 'open' and 'opens' or 'clicks'\n"
"if rule == '' then\n"
"  local first = 1\n"
"  if m[1] then first = redis.call('HSETNX', mk, 'first_' .. kind, NOW) end\n"
"  if m[1] then redis.call('HINCRBY', mk, f, 1) end\n"
"  if camp ~= '' and first == 1 then\n"
"    redis.call('HINCRBY', PFX .. 'campaign:' .. camp,\n"
"      kind == 'open' and 'opens_human' or 'clicks', 1)\n"
"  end\n"
"else\n"
"  if m[1] then redis.call('HINCRBY', mk, f .. '_machine', 1) end\n"
"  if camp ~= '' then\n"
"    redis.call('HINCRBY', PFX .. 'campaign:' .. camp,\n"
"      kind == 'open' and 'opens_machine' or 'clicks_machine', 1)\n"
"  end\n"
"end\n"
"local machine = rule == '' and '0' or '1'\n"
"event(KEYS[1], {'type', kind, 'msg', key, 'campaign', camp, 'customer',\n"
"  cust, 'machine', machine, 'rule', rule, 'url', ARGV[9], 'time', NOW})\n"
"if cust ~= '' then\n"
"  redis.call('XADD', PFX .. 'touch:' .. cust, 'MAXLEN', '~', ARGV[11], '*',\n"
"    'type', kind, 'channel', 'email', 'msg', key, 'campaign', camp,\n"
"    'machine', machine, 'url', ARGV[9], 'time', NOW)\n"
"end\n"
"return machine\n";

/* KEYS: events, suppress:email. ARGV[4..]: message key, class (hard |
 * soft | unknown | delayed), status, diagnostic, recipient, source (dsn |
 * webhook). A bounce moves the message to `bounced` once (a repeated DSN
 * is `late`); a hard one suppresses the address; `delayed` is only an
 * event. */
static const char bounce_body[] =
"local ev, sup = KEYS[1], KEYS[2]\n"
"local key, cls, status, diag, rcpt, src = ARGV[4], ARGV[5], ARGV[6],\n"
"  ARGV[7], ARGV[8], ARGV[9]\n"
"local mk = PFX .. 'msg:' .. key\n"
"local m = redis.call('HMGET', mk, 'state', 'campaign')\n"
"if not m[1] then return 'unknown' end\n"
"event(ev, {'type', 'bounce', 'msg', key, 'class', cls, 'status', status,\n"
"  'diagnostic', diag, 'recipient', rcpt, 'source', src, 'time', NOW})\n"
"if cls == 'delayed' then return 'delayed' end\n"
"if cls == 'hard' and rcpt ~= '' then redis.call('SADD', sup, rcpt) end\n"
"local ck = nil\n"
"if m[2] and m[2] ~= '' then ck = PFX .. 'campaign:' .. m[2] end\n"
"local why = cls .. ' bounce ' .. status .. ': ' .. diag\n"
"if setstate(mk, ev, ck, 'bounced', why, {'bounce_class', cls,\n"
"    'bounce_status', status}) then\n"
"  return 'bounced'\n"
"end\n"
"return 'late'\n";

/* GCRA for a shared token bucket. KEYS: throttle:<name>. ARGV: rate per
 * second, burst, tokens wanted. Grants up to that many tokens now (and
 * moves the theoretical arrival time on), or none and the ms to wait.
 * Redis's own clock, so every process shares one time line. */
static const char gcra_src[] =
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000\n"
"local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]),\n"
"  tonumber(ARGV[3])\n"
"local T = 1000 / rate\n"
"local tau = burst * T\n"
"local tat = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
"if tat < now then tat = now end\n"
"local n = math.floor((now + tau - tat) / T)\n"
"if n > want then n = want end\n"
"if n <= 0 then return {0, math.ceil(tat + T - tau - now)} end\n"
"tat = tat + n * T\n"
"redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX',\n"
"  math.ceil(tat - now + tau) + 1000)\n"
"return {n, 0}\n";

/* KEYS: delayed, q:email, q:sms, q:fax. ARGV[4..]: limit. Members are
 * "<channel index>|<payload>"; moved in one script so a crash can neither
 * lose nor duplicate one. */
static const char promote_body[] =
"local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', NOW, 'LIMIT', 0,\n"
"  tonumber(ARGV[4]))\n"
"for _, m in ipairs(due) do\n"
"  local bar = string.find(m, '|', 1, true)\n"
"  local ch = tonumber(string.sub(m, 1, bar - 1))\n"
"  redis.call('XADD', KEYS[2 + ch], '*', 'm', string.sub(m, bar + 1))\n"
"  redis.call('ZREM', KEYS[1], m)\n"
"end\n"
"return {#due, redis.call('ZCARD', KEYS[1])}\n";

static int
build(struct gw_script *s, const char *name, const char *body,
      const char *tables)
{
    /* tables holds ALLOWED, FINAL and PFX */
    struct buf b;
    int rc;

    buf_init(&b, 1u << 20);
    /* the body runs as a function so the counters are flushed after it,
     * whichever return it took */
    if ((rc = buf_puts(&b, tables)) < 0 || (rc = buf_puts(&b, prelude)) < 0 ||
        (rc = buf_puts(&b, "local function main()\n")) < 0 ||
        (rc = buf_puts(&b, body)) < 0 ||
        (rc = buf_puts(&b, "\nend\nlocal r = main()\nflush()\n"
                            "return r\n")) < 0) {
        buf_free(&b);
        return rc;
    }
    rc = gw_script_init(s, name, buf_cstr(&b));
    buf_free(&b);
    return rc;
}

int
track_init(const char *prefix, int64_t touch_max)
{
    char tables[4096];
    size_t n;
    int rc;

    if ((rc = msg_state_lua(tables, sizeof tables)) < 0)
        return rc;
    /* The key prefix as a Lua string; config allows no NUL, escape the
     * rest. */
    n = strlen(tables);
    n += (size_t)snprintf(tables + n, sizeof tables - n, "local PFX = \"");
    for (const char *p = prefix; *p && n + 8 < sizeof tables; p++)
        n += (size_t)snprintf(tables + n, sizeof tables - n, "\\%03d",
                              (unsigned char)*p);
    if (n + 4 >= sizeof tables)
        return GW_ETOOBIG;
    n += (size_t)snprintf(tables + n, sizeof tables - n,
                          "\"\nlocal TOUCHMAX = %lld\n",
                          (long long)touch_max);
    if (n >= sizeof tables)
        return GW_ETOOBIG;
    if ((rc = build(&gw_scripts.expand, "expand", expand_body, tables)) < 0 ||
        (rc = build(&gw_scripts.enqueue, "enqueue", enqueue_body,
                    tables)) < 0 ||
        (rc = build(&gw_scripts.dead, "dead", dead_body, tables)) < 0 ||
        (rc = build(&gw_scripts.campaign, "campaign", campaign_body,
                    tables)) < 0 ||
        (rc = build(&gw_scripts.control, "control", control_body,
                    tables)) < 0 ||
        (rc = build(&gw_scripts.begin, "begin", begin_body, tables)) < 0 ||
        (rc = build(&gw_scripts.finish, "finish", finish_body, tables)) < 0 ||
        (rc = build(&gw_scripts.promote, "promote", promote_body,
                    tables)) < 0 ||
        (rc = build(&gw_scripts.receipt, "receipt", receipt_body,
                    tables)) < 0 ||
        (rc = build(&gw_scripts.mo, "mo", mo_body, tables)) < 0 ||
        (rc = build(&gw_scripts.faxin, "faxin", faxin_body, tables)) < 0 ||
        (rc = build(&gw_scripts.customer, "customer", customer_body,
                    tables)) < 0 ||
        (rc = build(&gw_scripts.remind_due, "remind_due", remind_due_body,
                    tables)) < 0 ||
        (rc = build(&gw_scripts.remind_fire, "remind_fire", remind_fire_body,
                    tables)) < 0 ||
        (rc = gw_script_init(&gw_scripts.gcra, "gcra", gcra_src)) < 0 ||
        (rc = build(&gw_scripts.conversion, "conversion", conversion_body,
                    tables)) < 0 ||
        (rc = build(&gw_scripts.roi, "roi", roi_body, tables)) < 0 ||
        (rc = build(&gw_scripts.unsub, "unsub", unsub_body, tables)) < 0 ||
        (rc = build(&gw_scripts.hit, "hit", hit_body, tables)) < 0 ||
        (rc = build(&gw_scripts.bounce, "bounce", bounce_body, tables)) < 0)
        return rc;
    return 0;
}

void
track_free(void)
{
    gw_script_free(&gw_scripts.expand);
    gw_script_free(&gw_scripts.enqueue);
    gw_script_free(&gw_scripts.dead);
    gw_script_free(&gw_scripts.campaign);
    gw_script_free(&gw_scripts.control);
    gw_script_free(&gw_scripts.begin);
    gw_script_free(&gw_scripts.finish);
    gw_script_free(&gw_scripts.promote);
    gw_script_free(&gw_scripts.receipt);
    gw_script_free(&gw_scripts.mo);
    gw_script_free(&gw_scripts.faxin);
    gw_script_free(&gw_scripts.customer);
    gw_script_free(&gw_scripts.remind_due);
    gw_script_free(&gw_scripts.remind_fire);
    gw_script_free(&gw_scripts.gcra);
    gw_script_free(&gw_scripts.conversion);
    gw_script_free(&gw_scripts.roi);
    gw_script_free(&gw_scripts.unsub);
    gw_script_free(&gw_scripts.hit);
    gw_script_free(&gw_scripts.bounce);
}

static const struct gw_script *const all_scripts[] = {
    &gw_scripts.expand, &gw_scripts.enqueue, &gw_scripts.dead,
    &gw_scripts.campaign, &gw_scripts.control, &gw_scripts.begin,
    &gw_scripts.finish, &gw_scripts.promote, &gw_scripts.receipt,
    &gw_scripts.mo, &gw_scripts.faxin, &gw_scripts.customer,
    &gw_scripts.remind_due, &gw_scripts.remind_fire, &gw_scripts.gcra,
    &gw_scripts.conversion, &gw_scripts.roi, &gw_scripts.unsub,
    &gw_scripts.hit, &gw_scripts.bounce,
};

static void
on_loaded(struct gw_redis *r, redisReply *rep, void *arg)
{
    const struct gw_script *s = arg;
    static const struct log_ctx lg = { "track", NULL };

    (void)r;
    if (rep && rep->type == REDIS_REPLY_ERROR)
        log_error(&lg, "script %s does not compile: %s", s->name, rep->str);
}

void
track_load_scripts(struct gw *g)
{
    for (size_t i = 0; i < sizeof all_scripts / sizeof all_scripts[0]; i++) {
        const char *argv[] = { "SCRIPT", "LOAD", all_scripts[i]->src };
        gw_redis_cmd(g->cmd, on_loaded, (void *)all_scripts[i], 0, 3, argv,
                     NULL);
    }
}

int64_t
gw_now_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

struct ops *
ops_new(struct gw *g, const struct gw_script *s,
        void (*done)(struct ops *, redisReply *), void *arg)
{
    struct ops *o = calloc(1, sizeof *o);

    if (!o)
        fatal("out of memory");
    o->g = g;
    o->script = s;
    o->done = done;
    o->arg = arg;
    return o;
}

void
ops_key(struct ops *o, const char *k)
{
    ops_arg(o, k);
    o->numkeys++;
}

void
ops_argn(struct ops *o, const char *a, size_t len)
{
    if (o->nargs == o->capargs) {
        size_t c = o->capargs ? o->capargs * 2 : 64;
        size_t *off = realloc(o->off, c * sizeof *off);
        size_t *lens = off ? realloc(o->lens, c * sizeof *lens) : NULL;

        if (off)
            o->off = off;
        if (!off || !lens)
            fatal("out of memory");
        o->lens = lens;
        o->capargs = c;
    }
    if (o->cap - o->len < len + 1) {
        size_t c = o->cap ? o->cap : 4096;
        char *p;

        while (c - o->len < len + 1)
            c *= 2;
        if ((p = realloc(o->buf, c)) == NULL)
            fatal("out of memory");
        o->buf = p;
        o->cap = c;
    }
    if (len)
        memcpy(o->buf + o->len, a, len);
    o->buf[o->len + len] = 0;
    o->off[o->nargs] = o->len;
    o->lens[o->nargs++] = len;
    o->len += len + 1;
}

void
ops_arg(struct ops *o, const char *a)
{
    ops_argn(o, a ? a : "", a ? strlen(a) : 0);
}

void
ops_argi(struct ops *o, int64_t v)
{
    char n[24];

    snprintf(n, sizeof n, "%lld", (long long)v);
    ops_arg(o, n);
}

void
ops_head(struct ops *o)
{
    const struct config *c = o->g->conf;

    ops_argi(o, gw_now_ms());
    ops_argi(o, c->events_maxlen);
    ops_argi(o, c->ledger_ttl_s * 1000);
}

void
ops_free(struct ops *o)
{
    if (!o)
        return;
    free(o->buf);
    free(o->off);
    free(o->lens);
    free(o);
}

static void
ops_park(struct ops *o)
{
    o->next = o->g->retry;
    o->g->retry = o;
}

static void
on_ops_reply(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct ops *o = arg;
    static const struct log_ctx lg = { "track", NULL };

    (void)r;
    if (!rep) {
        /* Lost with the connection: nothing is acked, so resend later. */
        o->g->m.redis_retries++;
        ops_park(o);
        return;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        log_error(&lg, "script %s failed: %s", o->script->name, rep->str);
        /* A script error is a bug or a Redis out of memory; retry slowly
         * rather than losing the outcome. */
        if (++o->tries < 1000) {
            ops_park(o);
            gw_schedule_retry(o->g);
            return;
        }
    }
    o->done(o, rep);
    ops_free(o);
}

void
ops_run(struct ops *o)
{
    const char **argv = malloc((o->nargs ? o->nargs : 1) * sizeof *argv);
    int rc;

    if (!argv)
        fatal("out of memory");
    /* pointers now: buf may have moved while it grew */
    for (size_t i = 0; i < o->nargs; i++)
        argv[i] = o->buf + o->off[i];
    rc = gw_redis_eval(o->g->cmd, o->script, on_ops_reply, o, o->numkeys,
                       (int)o->nargs, argv, o->lens);
    free(argv);
    if (rc < 0)
        ops_park(o);
}

void
ops_retry_all(struct gw *g)
{
    struct ops *list = g->retry, *next;
    struct ops *rev = NULL;

    g->retry = NULL;
    /* Parked newest first: resend in the original order. */
    for (; list; list = next) {
        next = list->next;
        list->next = rev;
        rev = list;
    }
    for (; rev; rev = next) {
        next = rev->next;
        rev->next = NULL;
        ops_run(rev);
    }
}

void
ops_drop_all(struct gw *g)
{
    struct ops *o, *next;

    while ((o = g->retry) != NULL) {
        g->retry = NULL;
        for (; o; o = next) {
            next = o->next;
            o->done(o, NULL);
            ops_free(o);
        }
    }
}
