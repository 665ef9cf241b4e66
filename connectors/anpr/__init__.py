"""ANPR e-services through PDND (C030, C020, C021, C015, C029, C003, C007). See README.md."""
