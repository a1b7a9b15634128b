// Decision → CheckResponse message object (protobufjs field names). Pure.
import { jsToStruct } from './codec.js';
import type { Decision, HeaderMutation } from '../pipeline/decision.js';

// google.rpc.Code values Envoy sees; it only distinguishes 0 from non-zero, but logs show them.
const RPC_OK = 0;
const RPC_PERMISSION_DENIED = 7;
const RPC_RESOURCE_EXHAUSTED = 8;
const RPC_UNAVAILABLE = 14;
const RPC_UNAUTHENTICATED = 16;

// envoy.config.core.v3.HeaderValueOption.HeaderAppendAction
const APPEND_ACTION: Record<HeaderMutation['action'], number> = {
  append: 0,
  addIfAbsent: 1,
  overwrite: 2,
  overwriteIfExists: 3,
};

interface HeaderValueOptionMsg {
  header: { key: string; value: string };
  append?: { value: boolean };
  appendAction: number;
  keepEmptyValue?: boolean;
}

function headerOption(h: HeaderMutation): HeaderValueOptionMsg {
  const msg: HeaderValueOptionMsg = {
    header: { key: h.key, value: h.value },
    appendAction: APPEND_ACTION[h.action],
  };
  // Older Envoys ignore append_action and read the deprecated BoolValue: set it to agree.
  if (h.action === 'overwrite') msg.append = { value: false };
  else if (h.action === 'append') msg.append = { value: true };
  if (h.keepEmptyValue) msg.keepEmptyValue = true;
  return msg;
}

function rpcCodeFor(status: number): number {
  if (status === 401) return RPC_UNAUTHENTICATED;
  if (status === 429) return RPC_RESOURCE_EXHAUSTED;
  if (status >= 500) return RPC_UNAVAILABLE;
  return RPC_PERMISSION_DENIED;
}

export function toCheckResponse(d: Decision): object {
  if (d.kind === 'allow') {
    const ok: Record<string, unknown> = {};
    if (d.headers.length) ok.headers = d.headers.map(headerOption);
    if (d.headersToRemove.length) ok.headersToRemove = d.headersToRemove;
    if (d.responseHeadersToAdd.length) ok.responseHeadersToAdd = d.responseHeadersToAdd.map(headerOption);
    if (d.queryParamsToSet.length) ok.queryParametersToSet = d.queryParamsToSet;
    if (d.queryParamsToRemove.length) ok.queryParametersToRemove = d.queryParamsToRemove;
    const resp: Record<string, unknown> = { status: { code: RPC_OK }, okResponse: ok };
    if (d.dynamicMetadata && Object.keys(d.dynamicMetadata).length) {
      resp.dynamicMetadata = jsToStruct(d.dynamicMetadata as Record<string, unknown>);
    }
    return resp;
  }
  const denied: Record<string, unknown> = {
    status: { code: d.status },
    body: d.body,
  };
  if (d.headers.length) denied.headers = d.headers.map(headerOption);
  const resp: Record<string, unknown> = {
    status: { code: rpcCodeFor(d.status), message: d.reason },
    deniedResponse: denied,
  };
  if (d.dynamicMetadata && Object.keys(d.dynamicMetadata).length) {
    resp.dynamicMetadata = jsToStruct(d.dynamicMetadata as Record<string, unknown>);
  }
  return resp;
}
