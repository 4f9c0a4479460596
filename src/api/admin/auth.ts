// Admin authentication: HTTP Basic with user `admin` (indigo, goat --admin-password) or
// `Authorization: Bearer <password>` (goat --admin-bearer-token). Both sides are hashed to
// fixed-length digests before timingSafeEqual, so neither the comparison time nor an early length
// mismatch reveals anything about the password.

import { createHash, timingSafeEqual } from 'node:crypto'

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest()

export const ADMIN_USER = 'admin'
export const ADMIN_REALM = 'Basic realm="relay admin"'

export class AdminAuth {
  private readonly basic: Buffer
  private readonly bearer: Buffer

  constructor(password: string) {
    this.basic = digest(`${ADMIN_USER}:${password}`)
    this.bearer = digest(password)
  }

  /** True when the Authorization header carries the admin credentials. */
  check(header: string | undefined): boolean {
    if (!header) return false
    const space = header.indexOf(' ')
    if (space === -1) return false
    const scheme = header.slice(0, space).toLowerCase()
    const value = header.slice(space + 1).trim()
    if (scheme === 'basic') {
      // user:password, compared as one string so the user name check is constant-time too
      const decoded = Buffer.from(value, 'base64').toString('utf8')
      return timingSafeEqual(digest(decoded), this.basic)
    }
    if (scheme === 'bearer') return timingSafeEqual(digest(value), this.bearer)
    return false
  }
}
