// Package agent runs fwagent's update cycle: identify the recorder, fetch and
// verify the signed manifest, choose the release for this device and rollout,
// download and prove the image, install it inside a maintenance window, and
// confirm the device reports the new version. It owns the order of the steps,
// the journal entries written before each step, the failure classes and the
// daemon loop. It must not decide on its own what is safe to install: every
// install goes through verify's Decision, whose built-in rules no manifest,
// config or flag can loosen.
//
// The cycle is a state machine (runner.go); each state is a function that
// returns the next one, declared in its step_*.go file together with its
// failure table, and one runner sends every error of every state to one
// failure path (cycle.fail), which does what the failing step's table says
// for the error's class (failures.go):
//
//	resume ──(journal at install/reboot/confirm)──> settle ──> reboot or confirm
//	   │
//	identify ──> fetch_manifest ──> decide ──┬──> nothing to do / refused / paused (end)
//	                                         │
//	                                         └──> download ──> verify ──> wait_window ──┬──> (outside a window: end)
//	                                                                                    │
//	                      (disk busy, upgrade running, required backup failed) <── preflight
//	                      deferred: end, no attempt counted                         (health baseline,
//	                                                                                 config backup)
//	                                                                                    │
//	 done or installed_degraded <── confirm <── reboot <── flash <── install <──────────┘
//	 (confirm: the exact version, then channels and disks back to the baseline)
//
//	any step ──(error)──> the step's failure table: retry next cycle (the update stays at the step),
//	                      a new attempt next cycle (bounded by max_attempts), or quarantine the release
//
// Only download, verify, wait_window, install, reboot and confirm are
// journal steps (written before they run; flash continues install);
// identify, fetch_manifest, decide and preflight change nothing on the
// device and are simply run again. On start the agent resumes from the journal: an interrupted
// download resumes; a verified image is re-verified before install; an
// interrupted install, reboot or confirm first asks the device what it runs
// before doing anything else (settle), and never uploads blindly. Step names
// are stable strings (journal.Step*) that are never renamed.
package agent
