// Package nvrsim simulates a Hikvision network video recorder's ISAPI, so
// that fwagent's tests, its demo and integrators can exercise a real HTTP
// peer: digest auth with failed-login counting and lockout, deviceInfo in
// any of the namespaces recorders use, firmware upload by PUT or POST
// multipart (streamed to disk, never held in memory), flashing progress,
// reboots that take the recorder off the network, the recorder's health
// (disks with their states from ContentMgmt/Storage, camera channels from
// InputProxy/channels/status that come back after a reboot, late or never),
// the opaque configuration export (System/configurationData), a mode for
// older firmware without those endpoints, fault knobs, and the
// damage model: iDS-9632NXI-I8/16S is bricked by anything but the custom
// firmware 4.1.25 and then never answers ISAPI again.
//
// It learns what an uploaded image is from the fwagent.id entry that
// internal/testimage writes. GET /debug/state (JSON, no auth) and
// Sim.State/Sim.Wait expose the recorder's state to tests and tools.
//
// The simulator is a test peer only: it must not be imported by the agent
// or by device backends, and it keeps its own copy of the damage rule so
// that it judges the agent independently of verify's policy.
package nvrsim
