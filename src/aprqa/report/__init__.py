"""Rendering of aprqa's result data: console tables, JSON, HTML, Markdown, JUnit, CSV.

One folder per page: ``compare/`` (a compare ``Report``), ``run/`` (a playbook run's evidence),
``zoo/`` (a zoo's certification table). Beside them the pieces every page shares: ``page`` and
``svg`` (HTML/Markdown building blocks, charts), ``provenance`` and ``environment`` (who made a page
from which bytes, with which software), ``progress`` (the live display), ``units``, and the
``inspect`` views. Package ``__init__``s import nothing: ``aprqa inspect --json`` loads no rich.
"""
