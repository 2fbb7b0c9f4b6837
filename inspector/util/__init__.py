"""Small mechanisms every layer shares, written once: atomic file writes, canonical JSON and hash
chains, progress reporting and the commands' logging set-up. Imports nothing else from inspector."""
