"""The public AR page: its HTML, its words in each language, and the browser files it loads."""
