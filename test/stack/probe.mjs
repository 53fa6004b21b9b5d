// Dependency-free readiness probes for test/stack/stack.sh (runs under node or bun).
//   node probe.mjs kafka HOST PORT  -> Kafka Metadata v0 request; ok when >= 1 live broker is listed
//   node probe.mjs kafka-warm HOST PORT -> FindCoordinator for a group and a transactional id until both
//                                      answer: makes the broker create __consumer_offsets and
//                                      __transaction_state now rather than in the first test
//   node probe.mjs mongo HOST PORT  -> OP_MSG {hello: 1}; ok when the reply has ok: 1
// Prints one line, exits 0 when the server answered properly, 1 otherwise.
import net from "node:net";

const [kind, host = "127.0.0.1", portArg] = process.argv.slice(2);
const port = Number(portArg);
const timeoutMs = Number(process.env.CDC_PROBE_TIMEOUT_MS ?? 3000);

function request(payload, isComplete) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const chunks = [];
    let total = 0;
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`timeout after ${timeoutMs} ms`)); }, timeoutMs);
    sock.on("connect", () => sock.write(payload));
    sock.on("data", (d) => {
      chunks.push(d); total += d.length;
      const buf = Buffer.concat(chunks, total);
      if (isComplete(buf)) { clearTimeout(timer); sock.destroy(); resolve(buf); }
    });
    sock.on("error", (e) => { clearTimeout(timer); reject(e); });
    sock.on("close", () => { clearTimeout(timer); reject(new Error("connection closed before a full reply")); });
  });
}

// ---- Kafka: Metadata v0 (request header v1), all topics ----
async function kafka() {
  const clientId = Buffer.from("cdc-stack-probe");
  const body = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length + 4);
  let o = 0;
  o = body.writeInt16BE(3, o);          // api_key Metadata
  o = body.writeInt16BE(0, o);          // api_version 0
  o = body.writeInt32BE(4242, o);       // correlation_id
  o = body.writeInt16BE(clientId.length, o);
  o += clientId.copy(body, o);
  o = body.writeInt32BE(0, o);          // topics: empty array = all (v0)
  const size = Buffer.alloc(4); size.writeInt32BE(body.length);
  const buf = await request(Buffer.concat([size, body]), (b) => b.length >= 4 && b.length >= 4 + b.readInt32BE(0));
  let p = 4;
  const corr = buf.readInt32BE(p); p += 4;
  if (corr !== 4242) throw new Error(`bad correlation id ${corr}`);
  const nBrokers = buf.readInt32BE(p); p += 4;
  const brokers = [];
  for (let i = 0; i < nBrokers; i++) {
    const id = buf.readInt32BE(p); p += 4;
    const hl = buf.readInt16BE(p); p += 2;
    const h = buf.toString("utf8", p, p + hl); p += hl;
    const bp = buf.readInt32BE(p); p += 4;
    brokers.push(`${id}@${h}:${bp}`);
  }
  if (nBrokers < 1) throw new Error("metadata lists no live broker yet");
  return `kafka ok brokers=${brokers.join(",")}`;
}

// ---- Kafka: FindCoordinator v1 (key_type 0 = group, 1 = transaction) ----
async function findCoordinator(key, keyType) {
  const clientId = Buffer.from("cdc-stack-probe");
  const k = Buffer.from(key);
  const body = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length + 2 + k.length + 1);
  let o = 0;
  o = body.writeInt16BE(10, o);         // api_key FindCoordinator
  o = body.writeInt16BE(1, o);          // api_version 1
  o = body.writeInt32BE(4243, o);
  o = body.writeInt16BE(clientId.length, o);
  o += clientId.copy(body, o);
  o = body.writeInt16BE(k.length, o);
  o += k.copy(body, o);
  o = body.writeInt8(keyType, o);
  const size = Buffer.alloc(4); size.writeInt32BE(body.length);
  const buf = await request(Buffer.concat([size, body]), (b) => b.length >= 4 && b.length >= 4 + b.readInt32BE(0));
  return buf.readInt16BE(4 + 4 + 4); // after size, correlation_id, throttle_time_ms
}

async function kafkaWarm() {
  const deadline = Date.now() + Number(process.env.CDC_PROBE_WARM_MS ?? 60000);
  const want = [["cdc-stack-warmup", 0], ["cdc-stack-warmup", 1]];
  const codes = {};
  for (const [key, type] of want) {
    for (;;) {
      const code = await findCoordinator(key, type);
      codes[type] = code;
      if (code === 0) break;
      if (Date.now() > deadline) throw new Error(`FindCoordinator(key_type ${type}) error code ${code}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  return "kafka ok: group and transaction coordinators available";
}

// ---- MongoDB wire: OP_MSG hello ----
function bsonHello() {
  const parts = [];
  const el = (type, name, value) => parts.push(Buffer.from([type]), Buffer.from(name + "\0"), value);
  const i32 = (n) => { const b = Buffer.alloc(4); b.writeInt32LE(n); return b; };
  const str = (s) => { const v = Buffer.from(s + "\0"); return Buffer.concat([i32(v.length), v]); };
  el(0x10, "hello", i32(1));
  el(0x02, "$db", str("admin"));
  const inner = Buffer.concat([...parts, Buffer.from([0])]);
  return Buffer.concat([i32(inner.length + 4), inner]);
}

function bsonTopLevel(doc) {
  // Minimal reader: returns top-level scalar fields; skips nested values.
  const out = {};
  let p = 4;
  const end = doc.readInt32LE(0) - 1;
  while (p < end) {
    const type = doc[p++];
    const z = doc.indexOf(0, p);
    const name = doc.toString("utf8", p, z); p = z + 1;
    switch (type) {
      case 0x01: out[name] = doc.readDoubleLE(p); p += 8; break;
      case 0x02: { const l = doc.readInt32LE(p); out[name] = doc.toString("utf8", p + 4, p + 4 + l - 1); p += 4 + l; break; }
      case 0x03: case 0x04: { const l = doc.readInt32LE(p); p += l; break; }
      case 0x05: { const l = doc.readInt32LE(p); p += 4 + 1 + l; break; }
      case 0x07: p += 12; break;
      case 0x08: out[name] = doc[p] === 1; p += 1; break;
      case 0x09: case 0x11: case 0x12: out[name] = Number(doc.readBigInt64LE(p)); p += 8; break;
      case 0x0a: out[name] = null; break;
      case 0x10: out[name] = doc.readInt32LE(p); p += 4; break;
      case 0x13: p += 16; break;
      default: return out; // unknown type: stop reading
    }
  }
  return out;
}

async function mongo() {
  const doc = bsonHello();
  const header = Buffer.alloc(16 + 4 + 1);
  header.writeInt32LE(16 + 4 + 1 + doc.length, 0); // messageLength
  header.writeInt32LE(4242, 4);                     // requestID
  header.writeInt32LE(0, 8);                        // responseTo
  header.writeInt32LE(2013, 12);                    // OP_MSG
  header.writeUInt32LE(0, 16);                      // flagBits
  header[20] = 0;                                   // section kind 0 (body)
  const buf = await request(Buffer.concat([header, doc]), (b) => b.length >= 4 && b.length >= b.readInt32LE(0));
  const opCode = buf.readInt32LE(12);
  if (opCode !== 2013) throw new Error(`unexpected opCode ${opCode}`);
  if (buf.readInt32LE(8) !== 4242) throw new Error("reply is not for our request");
  const fields = bsonTopLevel(buf.subarray(21));
  if (fields.ok !== 1) throw new Error(`hello not ok: ${JSON.stringify(fields)}`);
  return `mongo ok maxWireVersion=${fields.maxWireVersion}${fields.msg ? ` msg=${fields.msg}` : ""}`;
}

const probes = { kafka, "kafka-warm": kafkaWarm, mongo };
if (!probes[kind] || !Number.isInteger(port) || port <= 0) {
  console.error("usage: probe.mjs kafka|kafka-warm|mongo HOST PORT");
  process.exit(2);
}
try {
  console.log(await probes[kind]());
  process.exit(0);
} catch (e) {
  console.log(`${kind} not ready: ${e.message}`);
  process.exit(1);
}
