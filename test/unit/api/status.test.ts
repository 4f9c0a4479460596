import assert from 'node:assert/strict'
import { test } from 'node:test'
import { accountView, inactiveRepoError } from '../../../src/api/account-status.ts'
import { AdminAuth } from '../../../src/api/admin/auth.ts'
import { normalizeBanDomain } from '../../../src/api/admin/service.ts'

const acc = (status: string, upstream_status = 'active', desynchronized = false) => ({ status, upstream_status, desynchronized })

test('combined account status: local overrides upstream', () => {
  assert.deepEqual(accountView(acc('active')), { active: true })
  assert.deepEqual(accountView(acc('takendown')), { active: false, status: 'takendown' })
  assert.deepEqual(accountView(acc('takendown', 'deactivated')), { active: false, status: 'takendown' })
  assert.deepEqual(accountView(acc('throttled')), { active: false, status: 'throttled' })
  assert.deepEqual(accountView(acc('host-throttled')), { active: false, status: 'throttled' })
  assert.deepEqual(accountView(acc('active', 'deleted')), { active: false, status: 'deleted' })
  assert.deepEqual(accountView(acc('active', 'inactive')), { active: false })
  assert.deepEqual(accountView(acc('active', 'active', true)), { active: true, status: 'desynchronized' })
  assert.deepEqual(accountView(acc('suspended', 'active', true)), { active: false, status: 'suspended' })
})

test('inactive repo errors follow the lexicon names', () => {
  const name = (s: string, u?: string) => inactiveRepoError(accountView(acc(s, u)))?.error
  assert.equal(name('active'), undefined)
  assert.equal(name('takendown'), 'RepoTakendown')
  assert.equal(name('suspended'), 'RepoSuspended')
  assert.equal(name('active', 'suspended'), 'RepoSuspended')
  assert.equal(name('active', 'deactivated'), 'RepoDeactivated')
  assert.equal(name('active', 'deleted'), 'RepoDeleted')
  assert.equal(name('throttled'), 'RepoInactive')
  assert.equal(name('active', 'inactive'), 'RepoInactive')
  assert.equal(inactiveRepoError(accountView(acc('active', 'deleted')))?.status, 403)
})

test('admin auth: Basic admin:<password> or Bearer <password>', () => {
  const a = new AdminAuth('s3cret:with:colons')
  const b64 = (s: string) => Buffer.from(s).toString('base64')
  assert.ok(a.check(`Basic ${b64('admin:s3cret:with:colons')}`))
  assert.ok(a.check(`basic ${b64('admin:s3cret:with:colons')}`))
  assert.ok(a.check('Bearer s3cret:with:colons'))
  assert.ok(!a.check(undefined))
  assert.ok(!a.check(''))
  assert.ok(!a.check('Basic'))
  assert.ok(!a.check(`Basic ${b64('Admin:s3cret:with:colons')}`))
  assert.ok(!a.check(`Basic ${b64('admin:s3cret')}`))
  assert.ok(!a.check('Bearer s3cret'))
  assert.ok(!a.check('s3cret:with:colons'))
})

test('ban domains are normalised', () => {
  assert.equal(normalizeBanDomain(' Evil.COM. '), 'evil.com')
  assert.equal(normalizeBanDomain('*.evil.com'), 'evil.com')
  assert.equal(normalizeBanDomain('localhost'), 'localhost')
  for (const bad of ['', 'com', 'a b.com', 'evil..com', 1, undefined]) assert.throws(() => normalizeBanDomain(bad), String(bad))
})
