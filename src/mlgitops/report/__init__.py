"""The pull-request report: what changed between a base revision and the workspace, and
whether the change passes the quality gate."""
