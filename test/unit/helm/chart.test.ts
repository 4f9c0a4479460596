// Renders helm/atproto-relay with representative values sets (no helm binary here; see
// gotemplate.ts for the renderer and docs/operations.md for what this does and does not check).
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { OPTIONS, type OptionSpec } from '../../../src/core/config.ts'
import { CHART_DEFAULTS, DEDICATED_SECRETS, VALUES_FILE, updateValues } from '../../../scripts/helm-values.ts'
import { TemplateFailure } from './gotemplate.ts'
import { chartMeta, chartValues, findAll, findOne, renderChart, type Manifest, type Rendered } from './chart.ts'

const specs = OPTIONS as readonly OptionSpec[]
const EXTERNAL_DB = { database: { existingSecret: 'relay-db' }, persistence: { enabled: false } }

function container(r: Rendered): any {
  const dep = findOne(r, 'Deployment')
  assert.equal(dep.spec.template.spec.containers.length, 1)
  return dep.spec.template.spec.containers[0]
}

function envMap(r: Rendered): Map<string, any> {
  const env = container(r).env as Array<{ name: string }>
  const names = env.map((e) => e.name)
  assert.equal(new Set(names).size, names.length, `duplicate env names: ${names}`)
  return new Map(env.map((e) => [e.name, e]))
}

function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v)
}

/** Structural checks every rendering must pass. */
function checkCommon(r: Rendered): void {
  for (const m of r.manifests) {
    assert.ok(m.apiVersion && m.kind && m.metadata?.name, `incomplete manifest ${JSON.stringify(m).slice(0, 200)}`)
    assert.match(m.metadata.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${m.kind} name`)
    assert.ok(m.metadata.name.length <= 63, `${m.kind} name too long`)
    assert.equal(m.metadata.labels?.['app.kubernetes.io/managed-by'], 'Helm', `${m.kind} labels`)
  }
  const dep = findOne(r, 'Deployment')
  const podLabels = dep.spec.template.metadata.labels
  assert.ok(selects(dep.spec.selector.matchLabels, podLabels), 'Deployment selector matches its pods')
  assert.deepEqual(dep.spec.strategy, { type: 'Recreate' })
  const pod = dep.spec.template.spec
  assert.equal(pod.enableServiceLinks, false)
  assert.equal(pod.automountServiceAccountToken, false)
  assert.equal(pod.securityContext.runAsNonRoot, true)
  assert.ok(pod.securityContext.runAsUser > 0)
  const c = container(r)
  assert.deepEqual(c.command, ['/usr/bin/tini', '--', 'node', 'src/main.ts'])
  assert.deepEqual(c.args, ['serve'])
  assert.equal(c.securityContext.allowPrivilegeEscalation, false)
  assert.equal(c.securityContext.readOnlyRootFilesystem, true)
  const ports = new Map((c.ports as Array<{ name: string; containerPort: number }>).map((p) => [p.name, p.containerPort]))
  const env = envMap(r)
  assert.equal(ports.get('api'), Number(env.get('RELAY_PORT')?.value ?? 2470))
  assert.equal(ports.get('metrics'), Number(env.get('RELAY_PROBE_PORT')?.value ?? 2471))
  assert.deepEqual(c.startupProbe.httpGet, { path: '/_healthz', port: 'metrics' })
  assert.deepEqual(c.livenessProbe.httpGet, { path: '/_healthz', port: 'metrics' })
  assert.deepEqual(c.readinessProbe.httpGet, { path: '/_readyz', port: 'metrics' })
  for (const p of [c.startupProbe, c.livenessProbe, c.readinessProbe]) {
    assert.ok(Number.isInteger(p.periodSeconds) && Number.isInteger(p.failureThreshold) && Number.isInteger(p.timeoutSeconds))
  }
  assert.ok(c.resources?.requests, 'resources set')
  // every volume mount has a volume, every PVC reference resolves to a rendered or existing claim
  const volumes = new Map((pod.volumes as Array<{ name: string }>).map((v) => [v.name, v as any]))
  for (const m of c.volumeMounts) assert.ok(volumes.has(m.name), `volume ${m.name}`)
  // Services select the pods and target named container ports
  const services = findAll(r, 'Service')
  assert.equal(services.length, 2)
  for (const s of services) {
    assert.ok(selects(s.spec.selector, podLabels), `${s.metadata.name} selects the pods`)
    for (const p of s.spec.ports) assert.ok(ports.has(p.targetPort), `${s.metadata.name} targetPort ${p.targetPort}`)
  }
  // every plain option reaches the container as its env variable (the set values do, with the value)
  for (const spec of specs.filter((s) => !s.secret)) {
    const value = r.values.config && (r.values.config as Record<string, unknown>)[spec.env]
    if (value === undefined || value === null || value === '') assert.ok(!env.has(spec.env), `${spec.env} unset`)
    else assert.equal(env.get(spec.env)?.value, String(value), spec.env)
  }
  for (const e of env.values()) assert.ok(typeof e.value === 'string' || e.valueFrom, `${e.name} value is a string`)
}

function secretRef(r: Rendered, name: string): { name: string; key: string } | undefined {
  return envMap(r).get(name)?.valueFrom?.secretKeyRef
}

test('values.yaml config section is generated from src/core/config.ts (run `node scripts/helm-values.ts`)', () => {
  const text = readFileSync(VALUES_FILE, 'utf8')
  const expected = updateValues(text)
  if (text !== expected) {
    const a = text.split('\n')
    const b = expected.split('\n')
    const at = a.findIndex((line, i) => line !== b[i])
    assert.fail(
      `helm/atproto-relay/values.yaml is out of date: run \`node scripts/helm-values.ts\`\n` +
        `first difference at line ${at + 1}:\n  found:    ${a[at]}\n  expected: ${b[at]}`,
    )
  }
  const config = chartValues().config as Record<string, string>
  const plain = specs.filter((s) => !s.secret)
  assert.deepEqual(Object.keys(config).sort(), plain.map((s) => s.env).sort())
  for (const s of plain) assert.equal(config[s.env], CHART_DEFAULTS[s.env] ?? s.default ?? '', s.env)
  for (const s of specs.filter((x) => x.secret)) assert.ok(!(s.env in config), `${s.env} is a secret`)
})

test('Chart.yaml appVersion follows package.json', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'))
  assert.equal(chartMeta().appVersion, pkg.version)
  assert.equal(chartMeta().apiVersion, 'v2')
})

test('default values: embedded PostgreSQL on a PersistentVolumeClaim, one replica, no PDB', () => {
  const r = renderChart()
  checkCommon(r)
  assert.deepEqual(r.manifests.map((m) => m.kind).sort(), ['Deployment', 'PersistentVolumeClaim', 'Service', 'Service', 'ServiceAccount'])
  const dep = findOne(r, 'Deployment')
  assert.equal(dep.spec.replicas, 1)
  const env = envMap(r)
  assert.ok(!env.has('DATABASE_URL'), 'no DATABASE_URL: embedded mode')
  assert.ok(!env.has('RELAY_ADMIN_PASSWORD'), 'admin API disabled by default')
  assert.equal(env.get('RELAY_DATA_DIR').value, '/data')
  assert.equal(env.get('RELAY_LISTEN_HOST').value, '0.0.0.0')
  const pvc = findOne(r, 'PersistentVolumeClaim')
  const pod = dep.spec.template.spec
  const data = pod.volumes.find((v: any) => v.name === 'data')
  assert.equal(data.persistentVolumeClaim.claimName, pvc.metadata.name)
  assert.ok(container(r).volumeMounts.some((m: any) => m.name === 'data' && m.mountPath === '/data'))
  assert.deepEqual(pvc.spec.accessModes, ['ReadWriteOnce'])
  assert.equal(pvc.metadata.annotations['helm.sh/resource-policy'], 'keep')
  assert.equal(pvc.spec.storageClassName, undefined, 'default StorageClass')
  assert.ok(pod.volumes.some((v: any) => v.name === 'dshm' && v.emptyDir.medium === 'Memory'))
  assert.equal(dep.spec.template.metadata.annotations, undefined)
  assert.equal(container(r).image, `atproto-relay:${chartMeta().appVersion}`)
  assert.ok(pod.terminationGracePeriodSeconds > 20, 'grace period exceeds RELAY_SHUTDOWN_TIMEOUT')
  assert.match(r.notes, /embedded PostgreSQL/)
})

test('embedded PostgreSQL without a PersistentVolumeClaim is refused', () => {
  assert.throws(() => renderChart({ persistence: { enabled: false } }), (e: Error) => e instanceof TemplateFailure && /requires persistence\.enabled=true/.test(e.message))
})

test('external database from an existing Secret; admin password from a Secret', () => {
  const r = renderChart({ ...EXTERNAL_DB, admin: { existingSecret: 'relay-admin', secretKey: 'password' } })
  checkCommon(r)
  assert.deepEqual(secretRef(r, 'DATABASE_URL'), { name: 'relay-db', key: 'database-url' })
  assert.deepEqual(secretRef(r, 'RELAY_ADMIN_PASSWORD'), { name: 'relay-admin', key: 'password' })
  assert.equal(findAll(r, 'PersistentVolumeClaim').length, 0)
  assert.equal(findAll(r, 'Secret').length, 0, 'no chart-managed Secret')
  const pod = findOne(r, 'Deployment').spec.template.spec
  assert.deepEqual(pod.volumes.map((v: any) => v.name), ['tmp'])
  assert.match(r.notes, /external PostgreSQL/)
  // an external database may still keep a data volume
  const withVolume = renderChart({ database: { existingSecret: 'relay-db' } })
  checkCommon(withVolume)
  assert.equal(findAll(withVolume, 'PersistentVolumeClaim').length, 1)
  assert.ok(!findOne(withVolume, 'Deployment').spec.template.spec.volumes.some((v: any) => v.name === 'dshm'))
})

test('convenience values create a Secret the env references, with a checksum annotation', () => {
  const r = renderChart({ database: { url: 'postgres://u:p@db:5432/relay' }, admin: { password: 's3cret' }, persistence: { enabled: false } })
  checkCommon(r)
  const secret = findOne(r, 'Secret')
  assert.equal(Buffer.from(secret.data['database-url'], 'base64').toString(), 'postgres://u:p@db:5432/relay')
  assert.equal(Buffer.from(secret.data['admin-password'], 'base64').toString(), 's3cret')
  assert.deepEqual(secretRef(r, 'DATABASE_URL'), { name: secret.metadata.name, key: 'database-url' })
  assert.deepEqual(secretRef(r, 'RELAY_ADMIN_PASSWORD'), { name: secret.metadata.name, key: 'admin-password' })
  assert.match(findOne(r, 'Deployment').spec.template.metadata.annotations['checksum/secret'], /^[0-9a-f]{64}$/)
  assert.ok(!r.files.get('deployment.yaml')!.includes('s3cret'), 'the password is not in the Deployment')
})

test('every secret option is wired from a Secret', () => {
  const others = specs.filter((s) => s.secret && !(s.env in DEDICATED_SECRETS))
  const secretConfig = Object.fromEntries(others.map((s) => [s.env, { secretName: 'relay-extra', key: s.env.toLowerCase() }]))
  const r = renderChart({ ...EXTERNAL_DB, admin: { existingSecret: 'relay-admin' }, secretConfig })
  checkCommon(r)
  for (const s of specs.filter((x) => x.secret)) {
    assert.ok(secretRef(r, s.env), `${s.env} from a Secret`)
    assert.equal(envMap(r).get(s.env).value, undefined)
  }
  assert.throws(() => renderChart({ ...EXTERNAL_DB, secretConfig: { RELAY_X: { key: 'k' } } }), /secretConfig\.RELAY_X\.secretName is required/)
})

test('secrets in config:, or both a Secret and a plain value, are refused', () => {
  for (const name of ['DATABASE_URL', 'RELAY_DATABASE_URL', 'RELAY_ADMIN_PASSWORD']) {
    assert.throws(() => renderChart({ ...EXTERNAL_DB, config: { [name]: 'x' } }), new RegExp(`config\\.${name}: secrets do not go in config`))
  }
  assert.throws(() => renderChart({ database: { existingSecret: 'a', url: 'postgres://x/y' } }), /not both/)
  assert.throws(() => renderChart({ admin: { existingSecret: 'a', password: 'b' } }), /not both/)
})

test('replicaCount 2: PodDisruptionBudget rendered, only with an external database and the explicit opt-in', () => {
  const r = renderChart({ ...EXTERNAL_DB, replicaCount: 2, unsafeMultiReplica: true })
  checkCommon(r)
  assert.equal(findOne(r, 'Deployment').spec.replicas, 2)
  assert.deepEqual(findOne(r, 'Deployment').spec.strategy, { type: 'Recreate' })
  const pdb = findOne(r, 'PodDisruptionBudget')
  assert.equal(pdb.apiVersion, 'policy/v1')
  assert.equal(pdb.spec.minAvailable, 1)
  assert.ok(selects(pdb.spec.selector.matchLabels, findOne(r, 'Deployment').spec.template.metadata.labels))
  assert.throws(() => renderChart({ ...EXTERNAL_DB, replicaCount: 2 }), /single-writer/)
  assert.throws(() => renderChart({ replicaCount: 2, unsafeMultiReplica: true }), /needs an external database/)
  assert.equal(findAll(renderChart({ ...EXTERNAL_DB, replicaCount: 1 }), 'PodDisruptionBudget').length, 0)
})

test('ServiceMonitor scrapes the metrics Service port', () => {
  const r = renderChart({ serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' }, interval: '15s' } })
  checkCommon(r)
  const sm = findOne(r, 'ServiceMonitor')
  assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1')
  assert.equal(sm.metadata.labels.release, 'kube-prometheus-stack')
  const matched = findAll(r, 'Service').filter((s) => selects(sm.spec.selector.matchLabels, s.metadata.labels))
  assert.equal(matched.length, 1, 'selects exactly the metrics Service')
  const [ep] = sm.spec.endpoints
  assert.deepEqual({ port: ep.port, path: ep.path, interval: ep.interval }, { port: 'metrics', path: '/metrics', interval: '15s' })
  const port = matched[0]!.spec.ports.find((p: any) => p.name === ep.port)
  assert.equal(port.targetPort, 'metrics')
  assert.equal(matched[0]!.spec.type, 'ClusterIP')
})

test('Ingress routes to the API Service with WebSocket timeouts', () => {
  const r = renderChart({
    ingress: {
      enabled: true,
      className: 'nginx',
      hosts: [{ host: 'relay.example.org', paths: [{ path: '/', pathType: 'Prefix' }] }],
      tls: [{ secretName: 'relay-tls', hosts: ['relay.example.org'] }],
    },
  })
  checkCommon(r)
  const ing = findOne(r, 'Ingress')
  assert.equal(ing.apiVersion, 'networking.k8s.io/v1')
  assert.equal(ing.spec.ingressClassName, 'nginx')
  assert.equal(ing.metadata.annotations['nginx.ingress.kubernetes.io/proxy-read-timeout'], '3600')
  assert.equal(ing.metadata.annotations['nginx.ingress.kubernetes.io/proxy-send-timeout'], '3600')
  assert.deepEqual(ing.spec.tls, [{ secretName: 'relay-tls', hosts: ['relay.example.org'] }])
  const api = findAll(r, 'Service').find((s) => s.metadata.labels['app.kubernetes.io/component'] === 'api') as Manifest
  const backend = ing.spec.rules[0].http.paths[0].backend.service
  assert.equal(ing.spec.rules[0].host, 'relay.example.org')
  assert.deepEqual(backend, { name: api.metadata.name, port: { number: api.spec.ports[0].port } })
})

test('config overrides reach env and ports; YAML numbers do not turn into 1e+06', () => {
  const r = renderChart({
    config: { RELAY_PORT: '3000', RELAY_PROBE_PORT: 3001, RELAY_LOG_LEVEL: 'debug', RELAY_ACCOUNT_CACHE_SIZE: 1000000, RELAY_TRUSTED_DOMAINS: '' },
    service: { port: 443, type: 'LoadBalancer' },
  })
  checkCommon(r)
  const env = envMap(r)
  assert.equal(env.get('RELAY_PORT').value, '3000')
  assert.equal(env.get('RELAY_PROBE_PORT').value, '3001')
  assert.equal(env.get('RELAY_LOG_LEVEL').value, 'debug')
  assert.equal(env.get('RELAY_ACCOUNT_CACHE_SIZE').value, '1000000')
  assert.ok(!env.has('RELAY_TRUSTED_DOMAINS'), 'an empty value leaves the option unset')
  const ports = container(r).ports
  assert.deepEqual(ports.map((p: any) => [p.name, p.containerPort]), [['api', 3000], ['metrics', 3001]])
  const api = findAll(r, 'Service').find((s) => s.metadata.labels['app.kubernetes.io/component'] === 'api')!
  assert.equal(api.spec.type, 'LoadBalancer')
  assert.deepEqual(api.spec.ports[0], { name: 'api', port: 443, targetPort: 'api', protocol: 'TCP' })
})

test('data dir override moves the volume mount; relative paths are refused', () => {
  const r = renderChart({ config: { RELAY_DATA_DIR: '/var/lib/relay' } })
  checkCommon(r)
  assert.ok(container(r).volumeMounts.some((m: any) => m.name === 'data' && m.mountPath === '/var/lib/relay'))
  assert.throws(() => renderChart({ config: { RELAY_DATA_DIR: './data' } }), /must be an absolute path/)
})

test('existing claim, storage class, extra env, scheduling and names', () => {
  const r = renderChart(
    {
      persistence: { existingClaim: 'relay-pg', storageClass: 'fast' },
      extraEnv: [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=3072' }],
      nodeSelector: { 'kubernetes.io/arch': 'amd64' },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'relay', effect: 'NoSchedule' }],
      podAnnotations: { 'example.com/a': 'b' },
      image: { repository: 'registry.example.com/atproto-relay', tag: 'abc123' },
      fullnameOverride: 'relay',
    },
    { name: 'prod', namespace: 'relay' },
  )
  checkCommon(r)
  assert.equal(findAll(r, 'PersistentVolumeClaim').length, 0)
  const dep = findOne(r, 'Deployment')
  assert.equal(dep.metadata.name, 'relay')
  const pod = dep.spec.template.spec
  assert.equal(pod.volumes.find((v: any) => v.name === 'data').persistentVolumeClaim.claimName, 'relay-pg')
  assert.equal(envMap(r).get('NODE_OPTIONS').value, '--max-old-space-size=3072')
  assert.deepEqual(pod.nodeSelector, { 'kubernetes.io/arch': 'amd64' })
  assert.equal(pod.tolerations[0].key, 'dedicated')
  assert.deepEqual(dep.spec.template.metadata.annotations, { 'example.com/a': 'b' })
  assert.equal(container(r).image, 'registry.example.com/atproto-relay:abc123')
  assert.deepEqual(findAll(r, 'Service').map((s) => s.metadata.name).sort(), ['relay', 'relay-metrics'])
  const sc = renderChart({ persistence: { storageClass: '-' } })
  assert.equal(findOne(sc, 'PersistentVolumeClaim').spec.storageClassName, '')
  const fast = renderChart({ persistence: { storageClass: 'fast', keep: false } })
  assert.equal(findOne(fast, 'PersistentVolumeClaim').spec.storageClassName, 'fast')
  assert.equal(findOne(fast, 'PersistentVolumeClaim').metadata.annotations, undefined)
})
