"""The zoo certification table (``summary``): model x format x quantization, as Markdown, HTML, CSV and JSON."""
