import type { Logger } from '@robustmq/common';

/**
 * What the Kafka listener does until the Kafka protocol is served by this node: the first
 * request closes the connection, which is how a Kafka broker answers a request it cannot parse.
 */
export function refuseKafkaConnection(socket: { once(e: 'data', fn: () => void): unknown; destroy(): unknown }, log: Logger): void {
  socket.once('data', () => {
    log.debug('kafka request refused: protocol not served');
    socket.destroy();
  });
}
