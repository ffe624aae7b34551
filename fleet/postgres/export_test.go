package postgres

// OpenPingingAfter is Open with the pool's idle time before a ping.
var OpenPingingAfter = open

// Migrations are the migration files, for a test that migrates a database
// step by step.
var Migrations = migrations
