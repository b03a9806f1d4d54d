// One MQTT 5.0 session with mqtt.js (npm mqtt 5), driven over standard input
// and reporting over standard output, so a Python test can re-authenticate a
// real client mid-session.
//
// Usage: node mqtt_session.mjs CONFIG_JSON
//   CONFIG_JSON: {"host": "127.0.0.1", "port": 1883, "clientId": "c1",
//                 "method": "JWT", "token": "eyJ...",   // enhanced authentication
//                 "username": "JWT", "password": "eyJ...", // or the legacy flow
//                 "clean": true, "sessionExpiryInterval": 0}
//
// Commands, one JSON object per line on standard input:
//   {"op": "subscribe", "topic": "t/#", "qos": 1}
//   {"op": "publish", "topic": "t/a", "payload": "hi", "qos": 1}
//   {"op": "reauth", "token": "eyJ..."}   sends AUTH 0x19 with the same method
//   {"op": "end"}                         sends DISCONNECT and exits
// Events, one JSON object per line on standard output:
//   {"event": "connack", "reasonCode": 0, "method": "JWT"}
//   {"event": "suback", "granted": [1]}
//   {"event": "puback", "messageId": 3, "reasonCode": 0}   (also pubrec, pubcomp)
//   {"event": "published", "id": N}    the publish callback ran (N counts commands)
//   {"event": "auth", "reasonCode": 0, "method": "JWT", "reasonString": null}
//   {"event": "message", "topic": "t/a", "payload": "hi", "qos": 1}
//   {"event": "disconnect", "reasonCode": 135, "reasonString": "..."}
//   {"event": "error", "message": "...", "code": 135}
//   {"event": "close"}
// The process exits when the connection closes or standard input ends.

import process from 'node:process';
import readline from 'node:readline';

import mqtt from 'mqtt';

const config = JSON.parse(process.argv[2]);

function emit(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

const options = {
  host: config.host,
  port: config.port,
  protocolVersion: 5,
  clientId: config.clientId,
  clean: config.clean ?? true,
  reconnectPeriod: 0,
  connectTimeout: 10000,
  properties: {},
};
if (config.sessionExpiryInterval) {
  options.properties.sessionExpiryInterval = config.sessionExpiryInterval;
}
if (config.method) {
  options.properties.authenticationMethod = config.method;
  options.properties.authenticationData = Buffer.from(config.token);
}
if (config.username !== undefined) {
  options.username = config.username;
  options.password = config.password;
}

const client = mqtt.connect(options);

// The broker's AUTH packets (0x00 after a re-authentication) reach this hook.
client.handleAuth = (packet, callback) => callback(null);

client.on('packetreceive', (packet) => {
  const properties = packet.properties || {};
  switch (packet.cmd) {
    case 'connack':
      emit({ event: 'connack', reasonCode: packet.reasonCode, method: properties.authenticationMethod ?? null });
      break;
    case 'auth':
      emit({
        event: 'auth',
        reasonCode: packet.reasonCode,
        method: properties.authenticationMethod ?? null,
        reasonString: properties.reasonString ?? null,
      });
      break;
    case 'suback':
      emit({ event: 'suback', granted: packet.granted });
      break;
    case 'puback':
    case 'pubrec':
    case 'pubcomp':
      emit({ event: packet.cmd, messageId: packet.messageId, reasonCode: packet.reasonCode ?? 0 });
      break;
    case 'disconnect':
      emit({ event: 'disconnect', reasonCode: packet.reasonCode, reasonString: properties.reasonString ?? null });
      break;
    default:
      break;
  }
});

client.on('message', (topic, payload, packet) => {
  emit({ event: 'message', topic, payload: payload.toString(), qos: packet.qos });
});
client.on('error', (error) => emit({ event: 'error', message: error.message, code: error.code ?? null }));
client.on('close', () => {
  emit({ event: 'close' });
  process.exit(0);
});

let published = 0;

function run(command) {
  switch (command.op) {
    case 'subscribe':
      client.subscribe(command.topic, { qos: command.qos ?? 0 }, (error) => {
        if (error) emit({ event: 'error', message: error.message, code: error.code ?? null });
      });
      break;
    case 'publish': {
      published += 1;
      const id = published;
      client.publish(command.topic, command.payload ?? '', { qos: command.qos ?? 0 }, (error) => {
        emit({ event: 'published', id, error: error ? error.message : null });
      });
      break;
    }
    case 'reauth':
      client._sendPacket({
        cmd: 'auth',
        reasonCode: 0x19,
        properties: {
          authenticationMethod: command.method ?? config.method,
          authenticationData: Buffer.from(command.token),
        },
      });
      break;
    case 'end':
      client.end(false, {}, () => process.exit(0));
      break;
    default:
      emit({ event: 'error', message: `unknown op ${command.op}`, code: null });
  }
}

const input = readline.createInterface({ input: process.stdin });
input.on('line', (line) => {
  if (line.trim()) run(JSON.parse(line));
});
input.on('close', () => client.end(true, {}, () => process.exit(0)));
