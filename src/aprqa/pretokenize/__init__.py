"""Pre-tokenizers: the split rules of every known vocabulary, their table, and the budgeted
regex engine for patterns read from files."""
