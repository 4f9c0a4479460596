// Pure DID document interpretation (atproto DID spec): the `#atproto` signing key (Multikey or the
// legacy EcdsaSecp256{k1,r1}VerificationKey2019 forms), the `#atproto_pds` service endpoint
// normalised to the host-authority form, and the handle claimed in alsoKnownAs. Never throws.
import { parseVerificationMethod, type PublicKey } from '../keys.ts'
import { normalizeServiceEndpoint } from '../../subscriber/hostname.ts'

export interface AtprotoIdentity {
  did: string
  /** null: the document has no usable `#atproto` key (events of this DID cannot be verified) */
  signingKey: PublicKey | null
  /** raw `#atproto_pds` serviceEndpoint, null when absent */
  pdsEndpoint: string | null
  /** normalised host of the PDS endpoint (compare with FrameMeta.hostname); null when absent/invalid */
  pdsHost: string | null
  /** first `at://` entry of alsoKnownAs, lower-cased; not verified (relays don't verify handles) */
  handle: string | null
}

export type DidDocResult = { ok: true; identity: AtprotoIdentity } | { ok: false; message: string }

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** `#frag` and `<did>#frag` both name fragment `frag` of `did`. */
function idMatches(id: unknown, did: string, fragment: string): boolean {
  if (typeof id !== 'string') return false
  return id === '#' + fragment || id === did + '#' + fragment
}

export function parseDidDocument(did: string, doc: unknown): DidDocResult {
  if (!isRecord(doc)) return { ok: false, message: 'DID document is not a JSON object' }
  if (doc.id !== did) return { ok: false, message: 'DID document id does not match the DID' }

  let signingKey: PublicKey | null = null
  if (Array.isArray(doc.verificationMethod)) {
    for (const vm of doc.verificationMethod) {
      if (!isRecord(vm) || !idMatches(vm.id, did, 'atproto')) continue
      // The spec asks for controller === did; PLC and did:web documents in the wild always set it,
      // but an absent controller is tolerated (the key is still the DID's own).
      if (vm.controller !== undefined && vm.controller !== did) continue
      const key = parseVerificationMethod(vm)
      if (key) {
        signingKey = key
        break
      }
    }
  }

  let pdsEndpoint: string | null = null
  let pdsHost: string | null = null
  if (Array.isArray(doc.service)) {
    for (const s of doc.service) {
      if (!isRecord(s) || !idMatches(s.id, did, 'atproto_pds')) continue
      if (s.type !== 'AtprotoPersonalDataServer') continue
      if (typeof s.serviceEndpoint !== 'string') continue
      pdsEndpoint = s.serviceEndpoint
      const n = normalizeServiceEndpoint(s.serviceEndpoint)
      pdsHost = n.ok ? n.host : null
      break
    }
  }

  let handle: string | null = null
  if (Array.isArray(doc.alsoKnownAs)) {
    for (const aka of doc.alsoKnownAs) {
      if (typeof aka === 'string' && aka.startsWith('at://') && aka.length > 5) {
        handle = aka.slice(5).toLowerCase()
        break
      }
    }
  }
  return { ok: true, identity: { did, signingKey, pdsEndpoint, pdsHost, handle } }
}

/**
 * Where a DID document lives. did:plc → `${plcUrl}/${did}`; did:web → https://host/.well-known/did.json
 * (http only for `localhost:PORT` in insecure mode). did:web with a path is not valid in atproto.
 */
export function didDocumentUrl(
  did: string,
  plcUrl: string,
  allowInsecure: boolean,
): { ok: true; url: string } | { ok: false; message: string } {
  if (did.startsWith('did:plc:')) {
    const id = did.slice(8)
    if (!/^[a-z2-7]{24}$/.test(id)) return { ok: false, message: 'malformed did:plc' }
    return { ok: true, url: plcUrl.replace(/\/+$/, '') + '/' + did }
  }
  if (did.startsWith('did:web:')) {
    const rest = did.slice(8)
    if (rest.includes(':')) return { ok: false, message: 'did:web with a path is not supported' }
    let authority: string
    try {
      authority = decodeURIComponent(rest).toLowerCase()
    } catch {
      return { ok: false, message: 'malformed did:web' }
    }
    const colon = authority.indexOf(':')
    const host = colon === -1 ? authority : authority.slice(0, colon)
    if (colon !== -1) {
      // A port is only meaningful for a local development did:web.
      if (host !== 'localhost' || !allowInsecure || !/^[0-9]{1,5}$/.test(authority.slice(colon + 1))) {
        return { ok: false, message: 'did:web with a port is only allowed for localhost in insecure mode' }
      }
      return { ok: true, url: `http://${authority}/.well-known/did.json` }
    }
    if (!/^[a-z0-9.-]+$/.test(host) || !host.includes('.')) return { ok: false, message: 'malformed did:web host' }
    return { ok: true, url: `https://${host}/.well-known/did.json` }
  }
  return { ok: false, message: 'unsupported DID method' }
}
