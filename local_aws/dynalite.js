// dynalite's own CLI, with the same arguments, except that a request its client aborts no longer
// ends the server. dynalite 4.0 rethrows any error of a request from its handler, so one reset
// connection (a test's fault proxy, a client giving up at its timeout) took the emulator down for
// every later test (architect/dynalite#183, open). Any other uncaught error still ends it, its
// stack on stderr.
'use strict'

const path = require('path')

const CLIENT_GONE = new Set(['ECONNRESET', 'ECONNABORTED', 'EPIPE'])

process.on('uncaughtException', (error) => {
  if (error && (CLIENT_GONE.has(error.code) || error.message === 'aborted')) {
    console.error(`dynalite: dropped a request its client aborted (${error.code || error.message})`)
    return
  }
  console.error(error && error.stack ? error.stack : error)
  process.exit(1)
})

require(path.join(__dirname, '..', 'node_modules', 'dynalite', 'cli.js'))
