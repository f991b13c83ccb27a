"""The live loop: project operations, the Label Studio queue, sync, connect, the job queue."""
