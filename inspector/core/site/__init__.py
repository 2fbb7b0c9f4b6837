"""Construction-site safety, pure logic: associating hard hats and vests with tracked workers,
zones, and incidents opened from violations that persist (see ``types`` for the data that flows)."""
