package crm

// MigrateTo lets tests build a database as an older Cairn left it.
var MigrateTo = migrate
