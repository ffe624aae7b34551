// Package brick holds the brick invariant: a seeded randomized test that
// runs the whole agent against the NVR simulator in many scenarios (models
// and look-alikes, installed firmware, manifests that lie, forged or
// expired signatures, corrupted images, operator policies, device faults)
// and asserts that no simulated recorder is ever damaged, that every
// scenario that did not install says why with a reason code, and that every
// install the simulator saw obeys the vendor's rule.
//
// The package has no code of its own: it exists so that the invariant runs
// against the agent's public API only, like an integrator would use it.
package brick
