"""Everything a campaign changes in the interpreter, in one place: one ``ProcessPatch`` mechanism and the
inventory of every patch (time and datetime stand-ins, stdlib ``random`` stand-ins, collector settings,
anyio's worker threads, the HTTP interception of the model boundary). Each is made when its first holder
enters and undone when its last holder leaves; ``patch.installed()`` says what is in place right now."""
