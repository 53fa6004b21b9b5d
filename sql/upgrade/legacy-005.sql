-- Adopting a database migrated by the old numbering (001_cdc_core … 005_capture_lean_trigger): its tables are those
-- of 001_baseline and 002_demo_schema already, and the current definitions have just replaced its functions. What is
-- left are the functions the definitions no longer have.
drop function if exists cdc.track_generate(text, jsonb); -- merged into cdc.track
drop function if exists cdc.setting(text); -- never used
