/*
 * Probe: drives pgjdbc (Debian's libpostgresql-jdbc-java) the way BI tools
 * do, for test/drivers/001_jdbc.pl.  Compiled and run by that test.
 *
 *   java -cp postgresql.jar:DIR Probe MODE JDBC_URL ARGS...
 *
 * Modes (every output line is tab-separated, first field the kind):
 *   catalog SCHEMA TABLE   DatabaseMetaData.getTables / getColumns:
 *                          "table NAME TYPE REMARKS", "column NAME TYPE_NAME
 *                          DATA_TYPE REMARKS"
 *   prepared SQL V1 V2...  one PreparedStatement, executed once per value
 *                          (setString): "exec I ROWS"; then the session's
 *                          prepared statement's "plans GENERIC CUSTOM"
 *                          (pg_prepared_statements)
 *   cursor SQL FETCHSIZE   setFetchSize in a transaction: "rows N"
 *   cancel SQL DELAY_MS    Statement.cancel() from another thread after
 *                          DELAY_MS: "cancelled SQLSTATE MS_AFTER_CANCEL",
 *                          then "after RESULT" of SELECT 1 on the same
 *                          connection
 *   describe SQL           prepare and describe only: "describe COLUMNS"
 *   query SQL              "query COLUMNS ROWS"
 */
import java.sql.*;
import java.util.Arrays;

public class Probe
{
	static String clean(String s)
	{
		return s == null ? "" : s.replaceAll("[\t\r\n]", " ");
	}

	public static void main(String[] args) throws Exception
	{
		String mode = args[0];
		try (Connection c = DriverManager.getConnection(args[1]))
		{
			switch (mode)
			{
				case "catalog": catalog(c, args[2], args[3]); break;
				case "prepared": prepared(c, args[2], Arrays.copyOfRange(args, 3, args.length)); break;
				case "cursor": cursor(c, args[2], Integer.parseInt(args[3])); break;
				case "cancel": cancel(c, args[2], Long.parseLong(args[3])); break;
				case "describe": describe(c, args[2]); break;
				case "query": query(c, args[2]); break;
				default: throw new IllegalArgumentException("unknown mode " + mode);
			}
		}
	}

	static void catalog(Connection c, String schema, String table) throws SQLException
	{
		DatabaseMetaData md = c.getMetaData();
		try (ResultSet rs = md.getTables(null, schema, "%", null))
		{
			while (rs.next())
				System.out.println("table\t" + rs.getString("TABLE_NAME") + "\t" +
								   rs.getString("TABLE_TYPE") + "\t" + clean(rs.getString("REMARKS")));
		}
		try (ResultSet rs = md.getColumns(null, schema, table, "%"))
		{
			while (rs.next())
				System.out.println("column\t" + rs.getString("COLUMN_NAME") + "\t" +
								   rs.getString("TYPE_NAME") + "\t" + rs.getInt("DATA_TYPE") + "\t" +
								   clean(rs.getString("REMARKS")));
		}
	}

	static void prepared(Connection c, String sql, String[] values) throws SQLException
	{
		try (PreparedStatement ps = c.prepareStatement(sql))
		{
			for (int i = 0; i < values.length; i++)
			{
				int rows = 0;

				ps.setString(1, values[i]);
				try (ResultSet rs = ps.executeQuery())
				{
					while (rs.next())
						rows++;
				}
				System.out.println("exec\t" + (i + 1) + "\t" + rows);
			}
			try (Statement s = c.createStatement();
				 ResultSet rs = s.executeQuery(
					 "SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0)" +
					 " FROM pg_prepared_statements WHERE NOT from_sql"))
			{
				rs.next();
				System.out.println("plans\t" + rs.getLong(1) + "\t" + rs.getLong(2));
			}
		}
	}

	static void cursor(Connection c, String sql, int fetchSize) throws SQLException
	{
		long rows = 0;

		c.setAutoCommit(false);		/* pgjdbc uses a cursor only in a transaction */
		try (Statement s = c.createStatement())
		{
			s.setFetchSize(fetchSize);
			try (ResultSet rs = s.executeQuery(sql))
			{
				while (rs.next())
					rows++;
			}
		}
		c.commit();
		System.out.println("rows\t" + rows);
	}

	static void cancel(Connection c, String sql, long delayMs) throws Exception
	{
		Statement s = c.createStatement();
		long[] cancelledAt = {0};
		Thread t = new Thread(() -> {
			try
			{
				Thread.sleep(delayMs);
				cancelledAt[0] = System.nanoTime();
				s.cancel();
			}
			catch (Exception e)
			{
				System.out.println("cancel-error\t" + clean(e.toString()));
			}
		});

		t.start();
		try (ResultSet rs = s.executeQuery(sql))
		{
			while (rs.next())
				;
			System.out.println("completed");
		}
		catch (SQLException e)
		{
			System.out.println("cancelled\t" + e.getSQLState() + "\t" +
							   (System.nanoTime() - cancelledAt[0]) / 1000000);
		}
		t.join();
		try (Statement s2 = c.createStatement(); ResultSet rs = s2.executeQuery("SELECT 1"))
		{
			rs.next();
			System.out.println("after\t" + rs.getInt(1));
		}
	}

	static void describe(Connection c, String sql) throws SQLException
	{
		try (PreparedStatement ps = c.prepareStatement(sql))
		{
			System.out.println("describe\t" + ps.getMetaData().getColumnCount());
		}
	}

	static void query(Connection c, String sql) throws SQLException
	{
		try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql))
		{
			int rows = 0;

			while (rs.next())
				rows++;
			System.out.println("query\t" + rs.getMetaData().getColumnCount() + "\t" + rows);
		}
	}
}
