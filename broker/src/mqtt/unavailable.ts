import type { Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';
import type { Logger } from '@robustmq/common';

/**
 * What the MQTT listener answers until the MQTT protocol engine is served by this node:
 * a CONNECT gets CONNACK "Server unavailable" (3.1.1 return code 3, 5.0 reason code 0x88)
 * and the connection is closed, so clients see a protocol-correct refusal, not a hang.
 * Malformed input closes the connection.
 */
export function refuseMqttConnection(socket: Socket, log: Logger): void {
  const parser = mqttPacket.parser({ protocolVersion: 5 });
  parser.on('packet', (packet) => {
    if (packet.cmd !== 'connect') {
      socket.destroy();
      return;
    }
    const v5 = packet.protocolVersion === 5;
    const bytes = mqttPacket.generate(
      v5 ? { cmd: 'connack', sessionPresent: false, reasonCode: 0x88 } : { cmd: 'connack', sessionPresent: false, returnCode: 3 },
      { protocolVersion: v5 ? 5 : 4 },
    );
    log.debug({ clientId: packet.clientId }, 'mqtt connect refused: server unavailable');
    socket.end(bytes);
  });
  parser.on('error', (err) => {
    log.debug({ err }, 'malformed mqtt packet');
    socket.destroy();
  });
  socket.on('data', (chunk) => parser.parse(chunk));
}
