// Package fleet is the protocol between fwagent and the fleet server, and
// the fleet's domain: what an agent sends (signed check-ins and reports),
// what the server answers (holds, the next check-in interval), the device
// key that signs them, the agent-side Client, the device states and the
// Store interface the server keeps them in.
//
// Security model: every check-in and report is an Envelope signed with the
// device's own Ed25519 key over PAE(type, payload), and carries a
// per-device sequence number that only grows, so the server can refuse a
// forged (another key) or replayed (sequence not above the last) message
// without trusting the network. The server can only ever say "stop": a
// Hold names a release that must not be started. Nothing in a
// CheckInReply can start, widen or change an install; that needs the
// signed manifest.
//
// It must not import the agent, the server or any database driver: the
// agent links it, and it stays small. Implementations of Store live in
// fleet/sqlite and fleet/postgres, the HTTP server in fleet/server.
package fleet
