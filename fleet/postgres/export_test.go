package postgres

// OpenPingingAfter is Open with the pool's idle time before a ping.
var OpenPingingAfter = open
