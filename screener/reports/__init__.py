"""What a counsellor reads: the HTML pages (`report`), their words (`wording`), the inline
SVG charts (`charts`), and the `history` command's table (`history_table`).
"""
