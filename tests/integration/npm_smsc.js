// npm_smsc.js -- an independent SMSC for the SMPP channel tests: the npm
// `smpp` package's server (node-smpp 0.5.1, installed in build/npm).
// Usage: node npm_smsc.js PORT LOGFILE   (PORT 0 picks a free port)
// Prints "listening on 127.0.0.1:PORT". Binds any system_id; answers
// submit_sm with a hex message id, writes one JSON line per submit_sm to
// LOGFILE, and sends a delivery receipt (text form plus the
// receipted_message_id and message_state TLVs) after SMSC_DLR_DELAY_MS
// (default 50) to submits that asked for one. Answers enquire_link and
// unbind. Exits when stdin closes (whoever started it is gone) or after
// SMSC_LIFETIME_S seconds (default 600).
'use strict';

const fs = require('fs');
const smpp = require('smpp');

const port = parseInt(process.argv[2] || '0', 10);
const logPath = process.argv[3];
const dlrDelay = parseInt(process.env.SMSC_DLR_DELAY_MS || '50', 10);
const lifetime = parseInt(process.env.SMSC_LIFETIME_S || '600', 10);
const log = logPath ? fs.openSync(logPath, 'a') : null;
let next = 0x1000;
const sessions = new Set();

function stamp(d) {
  const p = (n) => String(n).padStart(2, '0');
  return p(d.getUTCFullYear() % 100) + p(d.getUTCMonth() + 1) +
    p(d.getUTCDate()) + p(d.getUTCHours()) + p(d.getUTCMinutes());
}

function hex(b) {
  return Buffer.isBuffer(b) ? b.toString('hex') : '';
}

const server = smpp.createServer((session) => {
  sessions.add(session);
  session.on('close', () => sessions.delete(session));
  session.on('error', () => sessions.delete(session));
  for (const cmd of ['bind_transceiver', 'bind_transmitter',
                     'bind_receiver']) {
    session.on(cmd, (pdu) => session.send(pdu.response({system_id: 'NPM'})));
  }
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('unbind', (pdu) => {
    session.send(pdu.response());
    session.close();
  });
  session.on('submit_sm', (pdu) => {
    const id = (next++).toString(16);
    const sm = pdu.short_message || {};
    const udh = Array.isArray(sm.udh) ? Buffer.concat(sm.udh) : null;
    session.send(pdu.response({message_id: id}));
    if (log) {
      fs.writeSync(log, JSON.stringify({
        message_id: id,
        source_addr: pdu.source_addr,
        source_addr_ton: pdu.source_addr_ton,
        destination_addr: pdu.destination_addr,
        dest_addr_ton: pdu.dest_addr_ton,
        dest_addr_npi: pdu.dest_addr_npi,
        esm_class: pdu.esm_class,
        data_coding: pdu.data_coding,
        registered_delivery: pdu.registered_delivery,
        udh: hex(udh),
        text: typeof sm.message === 'string' ? sm.message : hex(sm.message),
      }) + '\n');
    }
    if (!(pdu.registered_delivery & 1)) {
      return;
    }
    const submitted = new Date();
    setTimeout(() => {
      if (!sessions.has(session)) {
        return;
      }
      session.deliver_sm({
        source_addr: pdu.destination_addr,
        source_addr_ton: pdu.dest_addr_ton,
        source_addr_npi: pdu.dest_addr_npi,
        destination_addr: pdu.source_addr,
        esm_class: 4,
        short_message: 'id:' + id + ' sub:001 dlvrd:001 submit date:' +
          stamp(submitted) + ' done date:' + stamp(new Date()) +
          ' stat:DELIVRD err:000 text:',
        receipted_message_id: id,
        message_state: 2,
      });
    }, dlrDelay);
  });
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write('listening on 127.0.0.1:' + server.address().port +
                       '\n');
});

function stop() {
  for (const s of sessions) {
    s.close();
  }
  server.close();
  if (log) {
    fs.closeSync(log);
  }
  process.exit(0);
}

process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
setTimeout(stop, lifetime * 1000).unref();
