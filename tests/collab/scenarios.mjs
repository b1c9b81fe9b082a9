// Real npm Yjs clients (yjs + y-websocket + ws under Node.js 20) against the MD Creator server.
// Driven by tests/tests/collab.rs: `node scenarios.mjs <scenario> '<json params>'`.
// Prints `READY` when the Rust side should act, and one final `RESULT <json>` line.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'

const [, , scenario, raw] = process.argv
const p = JSON.parse(raw || '{}')
const deadline = setTimeout(() => fail(`scenario ${scenario} timed out`), (p.timeoutSecs || 60) * 1000)

function fail (message) {
  console.log('RESULT ' + JSON.stringify({ ok: false, error: message }))
  process.exit(1)
}

function done (result) {
  clearTimeout(deadline)
  console.log('RESULT ' + JSON.stringify({ ok: true, ...result }))
  process.exit(0)
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function waitFor (what, predicate, timeoutMs = 20000) {
  const until = Date.now() + timeoutMs
  while (!predicate()) {
    if (Date.now() > until) fail(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

/** One y-websocket client; `url` is `ws://host/ws/documents`, the room is the document id. */
function client ({ url = p.url, doc = p.doc, token, name = 'client' }) {
  const ydoc = new Y.Doc()
  const provider = new WebsocketProvider(url, doc, ydoc, {
    WebSocketPolyfill: WebSocket,
    params: { token },
    disableBc: true
  })
  provider.awareness.setLocalStateField('user', { name })
  const c = { ydoc, provider, text: ydoc.getText('content'), closes: [], connects: 0 }
  provider.on('status', (e) => { if (e.status === 'connected') c.connects++ })
  provider.on('connection-close', (e) => { c.closes.push(e ? e.code : null) })
  return c
}

async function synced (clients) {
  await waitFor('sync', () => clients.every((c) => c.provider.synced))
}

function stop (clients) {
  for (const c of clients) c.provider.destroy()
}

async function concurrentEdits (clients, edits) {
  const markers = []
  await Promise.all(clients.map(async (c, ci) => {
    for (let i = 0; i < edits; i++) {
      const marker = `[${ci}.${i}]`
      markers.push(marker)
      const len = c.text.length
      // Token boundaries only, so no insert splits another marker.
      let at = Math.floor(Math.random() * (len + 1))
      while (at > 0 && at < len && c.text.toString()[at - 1] !== ']') at--
      c.text.insert(at, marker)
      await sleep(5 + Math.random() * 10)
    }
  }))
  return markers
}

async function converge (clients, markers) {
  await waitFor('convergence', () => {
    const t = clients[0].text.toString()
    return clients.every((c) => c.text.toString() === t) && markers.every((m) => t.includes(m))
  }, 30000)
  return clients[0].text.toString()
}

const scenarios = {
  /** n clients, concurrent edits, convergence; awareness seen and removed on an unclean close. */
  async converge () {
    const urls = p.urls || [p.url]
    const clients = p.tokens.map((token, i) => client({ url: urls[i % urls.length], token, name: `user${i}` }))
    await synced(clients)
    const initial = clients[0].text.toString()
    const markers = await concurrentEdits(clients, p.edits || 20)
    const text = await converge(clients, markers)
    let awarenessRemoved = null
    if (p.awareness) {
      const ids = clients.map((c) => c.ydoc.clientID)
      await waitFor('awareness of everybody', () => clients.every((c) =>
        ids.every((id) => c.provider.awareness.getStates().get(id)?.user)))
      // An unclean close: no goodbye from the client; the server must remove its state.
      const gone = clients[0]
      gone.provider.shouldConnect = false
      gone.provider.ws.terminate()
      const started = Date.now()
      await waitFor('awareness removal', () => clients.slice(1).every((c) =>
        !c.provider.awareness.getStates().has(gone.ydoc.clientID)), 10000)
      awarenessRemoved = Date.now() - started
    }
    // A fresh client sees the server's own copy.
    const fresh = client({ url: urls[urls.length - 1], token: p.tokens[0], name: 'fresh' })
    await synced([fresh])
    await waitFor('fresh client text', () => fresh.text.toString() === text, 10000)
    stop([...clients, fresh])
    done({ text, initial, markers: markers.length, awarenessRemoved })
  },

  /** One client alone for `seconds`: it must never reconnect (y-websocket reconnects after 30 s of silence). */
  async lonely () {
    const c = client({ token: p.token })
    await synced([c])
    c.text.insert(0, 'alone ')
    let messages = 0
    c.provider.ws.addEventListener('message', () => messages++)
    const ws = c.provider.ws
    await sleep(p.seconds * 1000)
    const sameSocket = c.provider.ws === ws && c.provider.wsconnected
    stop([c])
    done({ connects: c.connects, closes: c.closes, sameSocket, messages })
  },

  /** An editor and a viewer: the viewer's edits reach nobody. */
  async viewer () {
    const editor = client({ token: p.editor, name: 'editor' })
    const viewer = client({ token: p.viewer, name: 'viewer' })
    await synced([editor, viewer])
    editor.text.insert(0, 'EDITOR ')
    await waitFor('editor text at the viewer', () => viewer.text.toString().includes('EDITOR'))
    viewer.text.insert(0, 'VIEWER ')
    // The viewer still sees awareness: editor's state reaches it.
    await waitFor('awareness at the viewer', () =>
      viewer.provider.awareness.getStates().get(editor.ydoc.clientID)?.user?.name === 'editor')
    await sleep(1500)
    const editorText = editor.text.toString()
    const fresh = client({ token: p.editor, name: 'fresh' })
    await synced([fresh])
    await sleep(300)
    const freshText = fresh.text.toString()
    stop([editor, viewer, fresh])
    done({ editorText, freshText, viewerText: viewer.text.toString() })
  },

  /** Edits something and waits until another client has it (it has been relayed), then exits. */
  async relay () {
    const a = client({ token: p.token })
    const b = client({ token: p.token })
    await synced([a, b])
    for (const word of p.words) {
      a.text.insert(a.text.length, word)
      await waitFor('relay', () => b.text.toString().includes(word))
    }
    const text = b.text.toString()
    // Exit without a clean goodbye: the server is about to be killed anyway.
    done({ text })
  },

  /** A fresh client's text after sync. */
  async read () {
    const c = client({ token: p.token })
    await synced([c])
    await sleep(200)
    const text = c.text.toString()
    stop([c])
    done({ text })
  },

  /** Waits until the live text becomes `expect` (the Rust side changes it over REST after READY). */
  async rest () {
    const c = client({ token: p.token })
    await synced([c])
    c.text.insert(c.text.length, p.typed)
    await sleep(300)
    console.log('READY')
    await waitFor('the REST change', () => c.text.toString() === p.expect, 15000)
    stop([c])
    done({ text: c.text.toString() })
  },

  /** Hostile frames on raw sockets close only those sockets; real clients keep editing. */
  async hostile () {
    const editors = [client({ token: p.token, name: 'a' }), client({ token: p.token, name: 'b' })]
    await synced(editors)
    const frames = {
      truncatedVarint: Buffer.from([0, 2, 0x80]),
      stateVectorBomb: Buffer.from([0, 0, 5, 0x80, 0x80, 0x80, 0x80, 0x01]),
      deeplyNested: (() => {
        const u = [1, 1, 5, 0, 8 | 0x20, 1, 1, 0x6d, 1, 0x6b, 1]
        for (let i = 0; i < 100000; i++) u.push(117, 1)
        u.push(126, 0)
        const len = []
        let n = u.length
        while (n > 127) { len.push(0x80 | (n & 127)); n = Math.floor(n / 128) }
        len.push(n)
        return Buffer.from([0, 2, ...len, ...u])
      })(),
      unknownType: Buffer.from([42, 1, 2, 3]),
      garbageUpdate: Buffer.from([0, 2, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]),
      oversize: Buffer.alloc(4 * 1024 * 1024 + 16, 1)
    }
    const codes = {}
    const raw = Object.entries(frames).map(([name, frame]) => new Promise((resolve) => {
      const ws = new WebSocket(`${p.url}/${p.doc}?token=${encodeURIComponent(p.token)}`)
      ws.on('open', () => setTimeout(() => ws.send(frame), 100))
      ws.on('close', (code) => { codes[name] = code; resolve() })
      ws.on('error', () => {})
    }))
    const markers = await concurrentEdits(editors, 10)
    await Promise.all(raw)
    const more = await concurrentEdits(editors, 5)
    const text = await converge(editors, [...markers, ...more].map((m) => m))
    const stillConnected = editors.every((c) => c.provider.wsconnected && c.connects === 1)
    stop(editors)
    done({ codes, stillConnected, markers: markers.length + more.length, text })
  },

  /**
   * Raw sockets (`targets`, name → URL) held open; READY once all are live. Waits until the ones
   * in `closing` are closed (the Rust side revokes access after READY), then `settleMs` more,
   * and reports every socket's close code (null: still open).
   */
  async watch () {
    const sockets = Object.entries(p.targets).map(([name, url]) => {
      const s = { name, ws: new WebSocket(url), code: null, reason: null, open: false }
      s.ws.on('error', () => {})
      // The first message (sync step 1) comes once the server admitted and registered it.
      s.ws.on('message', () => { s.open = true })
      s.ws.on('close', (code, reason) => { s.code = code; s.reason = reason.toString() })
      return s
    })
    await waitFor('every socket open', () => sockets.every((s) => s.open || s.code !== null))
    const early = sockets.filter((s) => s.code !== null)
    if (early.length) fail(`closed before READY: ${JSON.stringify(early.map((s) => [s.name, s.code]))}`)
    console.log('READY')
    await waitFor('the revoked sockets to close', () =>
      sockets.filter((s) => p.closing.includes(s.name)).every((s) => s.code !== null), (p.waitSecs || 30) * 1000)
    await sleep(p.settleMs || 0)
    const codes = {}
    const reasons = {}
    for (const s of sockets) {
      codes[s.name] = s.code
      reasons[s.name] = s.reason
      if (s.code === null) s.ws.close()
    }
    done({ codes, reasons })
  },

  /**
   * A y-websocket editor stays connected while a raw socket floods the server with messages
   * (query-awareness frames) until it is closed; then the editor still edits and syncs.
   */
  async flood () {
    const editor = client({ token: p.token, name: 'editor' })
    const watcher = client({ token: p.token, name: 'watcher' })
    await synced([editor, watcher])
    const code = await new Promise((resolve) => {
      const ws = new WebSocket(`${p.url}/${p.doc}?token=${encodeURIComponent(p.token)}`)
      ws.on('error', () => {})
      ws.on('close', (code) => resolve(code))
      ws.on('open', async () => {
        // Well over the burst, as fast as the socket takes them; then wait for the close.
        for (let i = 0; i < p.messages && ws.readyState === WebSocket.OPEN; i++) {
          ws.send(Buffer.from([3]))
          if (i % 100 === 99) await sleep(0)
        }
      })
    })
    editor.text.insert(0, 'after the flood ')
    await waitFor('the edit at the watcher', () => watcher.text.toString().startsWith('after the flood '))
    const stillConnected = [editor, watcher].every((c) => c.provider.wsconnected && c.connects === 1)
    stop([editor, watcher])
    done({ code, stillConnected, text: watcher.text.toString() })
  },

  /** Opens a raw socket and reports the close code (refused connections). */
  async refused () {
    const headers = p.origin ? { Origin: p.origin } : {}
    const ws = new WebSocket(p.target, { headers })
    ws.on('error', () => {})
    ws.on('unexpected-response', (req, res) => done({ code: null, status: res.statusCode }))
    ws.on('close', (code, reason) => done({ code, reason: reason.toString() }))
    if (p.openForMs) ws.on('open', () => setTimeout(() => done({ code: null, open: true }), p.openForMs))
  }
}

if (!scenarios[scenario]) fail(`unknown scenario ${scenario}`)
scenarios[scenario]().catch((e) => fail(String(e && e.stack || e)))
