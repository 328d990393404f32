"""Maintenance as every part sees it: the schedule a user writes and its validation
(`schedules`, with due times in the plant's zone in `calendar`) and a task's lifecycle
(`lifecycle`). The engine (ingest/maintenance) raises tasks from them; the API and the
board let people write schedules and take the steps, through the same code.
"""
