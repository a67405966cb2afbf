"""Reports of campaigns: JSON (the gate's input), the terminal table."""
