"""What every stage shares and nothing stage-specific: errors, audio I/O, DSP, the mel format,
checkpoint loading, seeds, devices and progress. Imports nothing else of sv2tts's."""
