"""Scheduler: jobs (cron / at / every) that fire ``job.triggered`` exactly once per due time across replicas."""
