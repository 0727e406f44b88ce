"""The worker: downloads a job's input, runs its operations with libvips/ffmpeg, uploads outputs."""
