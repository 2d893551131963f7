"""The pull-request report.

What changed between a base revision and the workspace, and whether the change passes the
quality gate.
"""
