-- The plans table joins the change feed (0007_change_notify.sql): server processes keep the plans in memory (checkout
-- and the billing jobs read no plans row per request or batch), and drop them at the commit of any change — a
-- migration, an operator's psql — in every process.
CREATE TRIGGER plans_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON plans
  FOR EACH STATEMENT EXECUTE FUNCTION notify_change();
