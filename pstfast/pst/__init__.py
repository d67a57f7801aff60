"""Writing Unicode PST files (MS-PST): the NDB, LTP and messaging layers."""
