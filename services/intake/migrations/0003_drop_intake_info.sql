-- The placeholder table of 0001 never held anything: nothing reads or writes it.
DROP TABLE IF EXISTS intake_info;
