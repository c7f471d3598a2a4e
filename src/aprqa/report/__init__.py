"""Rendering of aprqa's result data: console tables, JSON, HTML, Markdown, JUnit."""
