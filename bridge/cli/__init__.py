"""`blender -b FILE.blend -c fathom ...`: generate, pending, models (main) and setup (setups)."""
