// `object` for Kyverno policies: the CheckRequest in Envoy's proto field names
// (object.attributes.request.http.headers[...]), built lazily from the RequestView.
import type { PeerView, RequestView } from './request-view.js';

function peer(p: PeerView): Record<string, unknown> {
  return {
    address: { socket_address: { address: p.address, port_value: BigInt(p.port) } },
    service: p.service,
    labels: p.labels,
    principal: p.principal,
    certificate: p.certificate,
  };
}

export function toObjectView(v: RequestView): Record<string, unknown> {
  const q = v.rawPath.indexOf('?');
  return {
    attributes: {
      source: peer(v.source),
      destination: peer(v.destination),
      request: {
        time: v.time,
        http: {
          id: v.streamId,
          method: v.method,
          headers: v.headers,
          path: v.rawPath,
          host: v.authority,
          scheme: v.scheme,
          query: q < 0 ? '' : v.rawPath.slice(q + 1),
          fragment: '',
          size: BigInt(v.size),
          protocol: v.protocol,
          body: v.body,
        },
      },
      context_extensions: v.contextExtensions,
      metadata_context: { filter_metadata: v.metadataContext },
      route_metadata_context: { filter_metadata: v.routeMetadataContext },
      tls_session: { sni: v.tlsSni },
    },
  };
}
