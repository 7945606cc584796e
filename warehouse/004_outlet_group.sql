-- Which side of coverage an outlet belongs to ("israeli", "palestinian", "gulf", ...), for
-- blindspots and report filters.
ALTER TABLE outlets ADD COLUMN IF NOT EXISTS outlet_group VARCHAR;
