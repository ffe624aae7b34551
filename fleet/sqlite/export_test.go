package sqlite

// Migrations are the migration files, for a test that migrates a database
// step by step.
var Migrations = migrations
